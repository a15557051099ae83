package jsonl

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzCompactValid: for valid JSON, compactValid gives exactly json.Compact's bytes.
func FuzzCompactValid(f *testing.F) {
	for _, s := range []string{`{ "a" : [ 1 , 2 ] }`, "[\n\t\"x y\\\" z\" ,\r\n null ]", `"  "`, `{"k":"\\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var want bytes.Buffer
		json.Compact(&want, data)
		if got := compactValid(nil, data); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("compactValid(%q) = %q, want %q", data, got, want.Bytes())
		}
	})
}

func TestArrayLinesAndCompaction(t *testing.T) {
	in := "[\n {\"a\": \"x\\n\",\n  \"b\" : [1, 2]},\n\n {\"c\":\n \"\\\\\"}\n]"
	recs, err := readAll(t, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Raw) != `{"a":"x\n","b":[1,2]}` || string(recs[1].Raw) != `{"c":"\\"}` {
		t.Fatalf("records %+v", recs)
	}
	if recs[0].Line != 2 || recs[1].Line != 5 {
		t.Fatalf("lines %d %d", recs[0].Line, recs[1].Line)
	}
}

// FuzzArrayElements: the records of a valid JSON array are exactly its
// elements as encoding/json splits them, compacted.
func FuzzArrayElements(f *testing.F) {
	for _, s := range []string{`[{"a":"\\\"]"}, [1, {"b": "}"}], "x\\\\"]`, "[\n 1,\n \"\\n\" ]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want []json.RawMessage
		if json.Unmarshal(data, &want) != nil || bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("\xef\xbb\xbf")) {
			return
		}
		recs, err := readAll(t, data)
		if err != nil {
			t.Fatalf("valid array %q: %v", data, err)
		}
		if len(recs) != len(want) {
			t.Fatalf("%d records, want %d", len(recs), len(want))
		}
		for i, w := range want {
			var c bytes.Buffer
			json.Compact(&c, w)
			if !bytes.Equal(recs[i].Raw, c.Bytes()) {
				t.Fatalf("record %d = %q, want %q", i, recs[i].Raw, c.Bytes())
			}
		}
	})
}

// FuzzValid: valid agrees with encoding/json.Valid on every input.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e+3,true,false,null,"\u00e9\n"]}`, ` [ ] `, `01`, `-`, `1.`, `1e`, `"\x"`, "\"\x01\"", `{"a" 1}`, `[1,]`, `{"a":1,}`, `"\ud800"`, "\"\xff\"", `tru`, `nul`, `{}x`, `1 2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := valid(data), json.Valid(data); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid = %v", data, got, want)
		}
	})
}

func TestValidDepth(t *testing.T) {
	for _, n := range []int{9999, 10000, 10001, 20000} {
		for _, open := range []string{"[", `{"a":`} {
			closing := map[string]string{"[": "]", `{"a":`: "}"}[open]
			b := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closing, n))
			if got, want := valid(b), json.Valid(b); got != want {
				t.Fatalf("depth %d %s: valid %v, json.Valid %v", n, open, got, want)
			}
		}
	}
}

package jsonl

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func readAll(t *testing.T, input []byte) ([]Record, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(input), "in.jsonl")
	if err != nil {
		return nil, err
	}
	var out []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

func TestReaderForms(t *testing.T) {
	long := strings.Repeat("x", 5<<20) // 5 MB line: no line-length limit
	cases := []struct {
		name  string
		in    string
		want  []string
		lines []int
	}{
		{"empty", "", nil, nil},
		{"blank lines", "\n\n  \n", nil, nil},
		{"jsonl", "{\"b\":1,\"a\":2}\n{\"x\":\"y\"}\n", []string{`{"b":1,"a":2}`, `{"x":"y"}`}, []int{1, 2}},
		{"no final newline", "{\"a\":1}\n\n{\"a\":2}", []string{`{"a":1}`, `{"a":2}`}, []int{1, 3}},
		{"crlf", "{\"a\":1}\r\n{\"a\":2}\r\n", []string{`{"a":1}`, `{"a":2}`}, []int{1, 2}},
		{"bom", "\xef\xbb\xbf{\"a\":1}\n", []string{`{"a":1}`}, []int{1}},
		{"array", "[\n  {\"b\": 1,\n   \"a\": \"]x[\"},\n  {\"c\": [1, {\"d\": \"\\\"}\"}]}\n]\n", []string{`{"b":1,"a":"]x["}`, `{"c":[1,{"d":"\"}"}]}`}, []int{2, 4}},
		{"empty array", " [ ] ", nil, nil},
		{"array scalars", `[1, "a", null, true]`, []string{`1`, `"a"`, `null`, `true`}, []int{1, 1, 1, 1}},
		{"long line", `{"t":"` + long + `"}` + "\n", []string{`{"t":"` + long + `"}`}, []int{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, err := readAll(t, []byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(c.want) {
				t.Fatalf("got %d records, want %d", len(recs), len(c.want))
			}
			for i, r := range recs {
				if string(r.Raw) != c.want[i] {
					t.Errorf("record %d = %.80s, want %.80s", i, r.Raw, c.want[i])
				}
				if r.Num != i+1 || r.Line != c.lines[i] {
					t.Errorf("record %d: num %d line %d, want %d %d", i, r.Num, r.Line, i+1, c.lines[i])
				}
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"bad line", "{\"a\":1}\n{\"a\":\n{\"a\":3}\n", "in.jsonl:2: record 2: invalid JSON"},
		{"garbage", "{\"a\":1}\n\nnot json\n", "in.jsonl:3: record 2: invalid JSON"},
		{"unclosed array", "[{\"a\":1},\n{\"a\":2}", "JSON array not closed"},
		{"unclosed record", "[{\"a\":1},\n{\"a\":2", "in.jsonl:2: record 2: unexpected end of input inside record"},
		{"missing comma", "[{\"a\":1}\n{\"a\":2}]", "expected ',' or ']' after record 1"},
		{"trailing data", "[{\"a\":1}] {}", "after the closing ']'"},
		{"bad element", "[{\"a\":1},\n {\"a\" 2}]", "in.jsonl:2: record 2: invalid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readAll(t, []byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestZstdRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl.zst")
	w, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if err := w.Encode(map[string]any{"i": i, "s": "<&>"}); err != nil {
			t.Fatal(err)
		}
	}
	// nothing visible before commit
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("output exists before commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.HasPrefix(raw, []byte{0x28, 0xB5, 0x2F, 0xFD}) {
		t.Fatal("output is not zstd")
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			I int
			S string
		}
		json.Unmarshal(rec.Raw, &v)
		if v.I != n || v.S != "<&>" || !bytes.Contains(rec.Raw, []byte("<&>")) {
			t.Fatalf("record %d = %s", n, rec.Raw)
		}
		n++
	}
	if n != 1000 {
		t.Fatalf("read %d records", n)
	}
	// zstd detected by magic, whatever the name
	os.Rename(path, filepath.Join(dir, "plain.jsonl"))
	recs := 0
	r2, _ := Open(filepath.Join(dir, "plain.jsonl"))
	for {
		if _, err := r2.Next(); err != nil {
			break
		}
		recs++
	}
	if recs != 1000 {
		t.Fatalf("read %d records by magic", recs)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "x.jsonl"), false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(`{"a":1}`))
	w.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

func TestObjectHelpers(t *testing.T) {
	raw := []byte(`{"z": 1, "instruction" : "say \"hi\"\n", "n":{"instruction":"inner"}, "arr":[1,"}"], "e": ""}`)
	s, found, err := GetString(raw, "instruction")
	if err != nil || !found || s != "say \"hi\"\n" {
		t.Fatalf("GetString = %q %v %v", s, found, err)
	}
	if _, found, _ := GetString(raw, "missing"); found {
		t.Fatal("found a missing key")
	}
	if _, _, err := GetString(raw, "z"); err == nil || !strings.Contains(err.Error(), `field "z" is a number`) {
		t.Fatalf("non-string error = %v", err)
	}
	if _, _, err := GetString([]byte("{\"a\":\"\xff\"}"), "a"); err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Fatalf("invalid utf8 error = %v", err)
	}
	if _, _, err := GetString([]byte(`[1]`), "a"); err != ErrNotObject {
		t.Fatalf("array error = %v", err)
	}
	out, _ := SetString(raw, "instruction", "new")
	if want := `{"z": 1, "instruction" : "new", "n":{"instruction":"inner"}, "arr":[1,"}"], "e": ""}`; string(out) != want {
		t.Fatalf("replace = %s", out)
	}
	out, _ = Set(raw, "added", []byte(`{"k":0.5}`))
	if !bytes.HasSuffix(out, []byte(`"e": "","added":{"k":0.5}}`)) {
		t.Fatalf("append = %s", out)
	}
	out, _ = SetString([]byte(`{ }`), "a", "b")
	if string(out) != `{ "a":"b"}` {
		t.Fatalf("append to empty = %s", out)
	}
	ms, _ := Members(raw)
	keys := []string{}
	for _, m := range ms {
		keys = append(keys, m.Key)
	}
	if strings.Join(keys, ",") != "z,instruction,n,arr,e" {
		t.Fatalf("members = %v", keys)
	}
	// duplicate keys: the last one wins, as in Python's json
	if s, _, _ := GetString([]byte(`{"a":"1","a":"2"}`), "a"); s != "2" {
		t.Fatalf("duplicate = %q", s)
	}
	// escaped key
	if s, _, _ := GetString([]byte(`{"\u0061":"x"}`), "a"); s != "x" {
		t.Fatalf("escaped key = %q", s)
	}
}

func TestAppendStringMatchesEncoding(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n tab\t cr\r", "\x00\x1f\x7f", "é ü 中文 🙂", "<a&b>", "\u2028\u2029", "bad\xffutf8"} {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, got, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if back != want {
			t.Fatalf("%q -> %s -> %q", s, got, back)
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{"{\"a\":1}\n", "[{\"a\":1},{\"b\":[2]}]", "[", "{\"a\":\"\\\"\"}\n{}", "[1,2", "\xef\xbb\xbf[]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			rec, err := r.Next()
			if err != nil {
				if err != io.EOF && strings.Contains(err.Error(), "\n") {
					t.Fatalf("multi-line error %q", err)
				}
				return
			}
			if !json.Valid(rec.Raw) {
				t.Fatalf("invalid record %q", rec.Raw)
			}
			if bytes.ContainsAny(rec.Raw, "\n") {
				t.Fatalf("record with newline %q", rec.Raw)
			}
		}
	})
}

func FuzzObject(f *testing.F) {
	f.Add([]byte(`{"a":"x","b":{"a":1}}`), "a")
	f.Add([]byte(`{}`), "k")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		if !json.Valid(data) || !utf8.ValidString(key) {
			return
		}
		var m map[string]json.RawMessage
		isObj := json.Unmarshal(data, &m) == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
		v, found, err := Get(data, key)
		if !isObj {
			return
		}
		if err != nil {
			t.Fatalf("Get error on object: %v", err)
		}
		want, ok := m[key]
		if found != ok || (ok && !bytes.Equal(v, bytes.TrimSpace(want))) {
			t.Fatalf("Get(%q) = %s %v, want %s %v", key, v, found, want, ok)
		}
		out, err := Set(data, key, []byte(`"zz"`))
		if err != nil || !json.Valid(out) {
			t.Fatalf("Set gave invalid JSON %s: %v", out, err)
		}
		var m2 map[string]json.RawMessage
		json.Unmarshal(out, &m2)
		if string(m2[key]) != `"zz"` || len(m2) != len(m)+map[bool]int{true: 0, false: 1}[ok] {
			t.Fatalf("Set result %s", out)
		}
	})
}

package rougefilter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

const (
	sample = "../../testdata/rougefilter/sample.jsonl"
	seeds  = "../../testdata/rougefilter/seeds.jsonl"
)

func runMain(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func fieldOf(t *testing.T, line, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("output line %q: %v", line, err)
	}
	return m[key]
}

func TestCLI(t *testing.T) {
	two := `{"instruction":"Write a poem about the sea."}` + "\n" + `{"instruction":"write a poem about the sea!!"}` + "\n"
	cases := []struct {
		name      string
		args      []string
		stdin     string
		code      int
		outLines  int    // -1: don't check
		out       string // substring of stdout
		errSub    string // substring of stderr ("" = stderr must be empty)
		errAbsent bool
	}{
		{name: "help", args: []string{"--help"}, code: 0, outLines: -1, out: "Example:"},
		{name: "help lists flags", args: []string{"-h"}, code: 0, outLines: -1, out: "--against-field"},
		{name: "sample vs seeds", args: []string{"--against", seeds, sample}, code: 0, outLines: 31},
		{name: "sample alone", args: []string{sample}, code: 0, outLines: 34},
		{name: "threshold 0.3", args: []string{"--threshold", "0.3", sample}, code: 0, outLines: -1},
		{name: "stdin near duplicate", stdin: two, code: 0, outLines: 1, out: "Write a poem about the sea."},
		{name: "threshold 1 keeps all", args: []string{"--threshold", "1"}, stdin: two, code: 0, outLines: 2},
		{name: "empty input", stdin: "", code: 0, outLines: 0},
		{name: "whitespace input", stdin: "\n\n  \n", code: 0, outLines: 0},
		{name: "empty array", stdin: "[]", code: 0, outLines: 0},
		{name: "json array", stdin: `[{"instruction":"a b c"},{"instruction":"a b c d"},{"instruction":"x y"}]`, code: 0, outLines: 2, out: `{"instruction":"x y"}`},
		{name: "other field", args: []string{"--field", "text"}, stdin: `{"text":"a b"}` + "\n" + `{"text":"a b"}` + "\n", code: 0, outLines: 1},
		{name: "unknown fields kept", stdin: `{"z":1,"instruction":"hi","a":[1,{"b":null}]}` + "\n", code: 0, outLines: 1, out: `{"z":1,"instruction":"hi","a":[1,{"b":null}]}`},
		{name: "limit", args: []string{"--limit", "3", sample}, code: 0, outLines: 3},
		// the batch past the cut is checked too, but only what was kept counts in the pool
		{name: "limit pool", args: []string{"--stats", "--limit", "3", "--against", seeds, sample}, code: 0, outLines: 3, errSub: "read 4, kept 3, dropped 1, bad 0; pool 8 (5 preloaded)"},
		{name: "stats", args: []string{"--stats", "--against", seeds, sample}, code: 0, outLines: 31, errSub: "read 40, kept 31, dropped 9, bad 0; pool 36 (5 preloaded)"},
		{name: "limit stats", args: []string{"--stats", "--limit", "2"}, stdin: two + two + `{"instruction":"x"}` + "\n", code: 0, outLines: 2, errSub: "read 5, kept 2, dropped 3"},
		{name: "reference same", args: []string{"--reference", "--against", seeds, sample}, code: 0, outLines: 31},

		// usage errors: exit 2 with a hint
		{name: "unknown flag", args: []string{"--nope"}, code: 2, outLines: 0, errSub: "flag provided but not defined: -nope\nRun 'rougefilter --help' for usage."},
		{name: "bad threshold", args: []string{"--threshold", "1.5"}, code: 2, outLines: 0, errSub: "--threshold must be between 0 and 1, got 1.5"},
		{name: "threshold not a number", args: []string{"--threshold", "x"}, code: 2, outLines: 0, errSub: "invalid value \"x\" for flag -threshold"},
		{name: "negative limit", args: []string{"--limit", "-1"}, code: 2, outLines: 0, errSub: "--limit must be >= 0"},
		{name: "zero workers", args: []string{"-j", "0"}, code: 2, outLines: 0, errSub: "--workers must be >= 1"},
		{name: "empty field", args: []string{"--field", ""}, code: 2, outLines: 0, errSub: "--field must not be empty"},

		// bad input: exit 1, one line naming file, line, record
		{name: "missing field", stdin: `{"instruction":"a"}` + "\n" + `{"input":"b"}` + "\n", code: 1, outLines: 1,
			errSub: "rougefilter: <stdin>:2: record 2: field \"instruction\" missing (choose the text field with --field)\n"},
		{name: "non-string field", stdin: `{"instruction":5}` + "\n", code: 1, outLines: 0,
			errSub: "rougefilter: <stdin>:1: record 1: field \"instruction\" is a number, want a string\n"},
		{name: "null field", stdin: "\n" + `{"instruction":null}` + "\n", code: 1, outLines: 0,
			errSub: "rougefilter: <stdin>:2: record 1: field \"instruction\" is null, want a string\n"},
		{name: "not an object", stdin: `{"instruction":"a"}` + "\n" + `["instruction"]` + "\n", code: 1, outLines: 1,
			errSub: "rougefilter: <stdin>:2: record 2: record is an array, not a JSON object\n"},
		{name: "array of strings", stdin: `["instruction"]`, code: 1, outLines: 0,
			errSub: "rougefilter: <stdin>:1: record 1: record is a string, not a JSON object\n"},
		{name: "invalid json", stdin: `{"instruction":"a"}` + "\n" + `{"instruction":"b"` + "\n", code: 1, outLines: 1,
			errSub: "rougefilter: <stdin>:2: record 2: invalid JSON"},
		{name: "unclosed array", stdin: `[{"instruction":"a"}`, code: 1, outLines: -1,
			errSub: "JSON array not closed"},
		{name: "missing file", args: []string{"/nonexistent/x.jsonl"}, code: 1, outLines: 0,
			errSub: "rougefilter: open /nonexistent/x.jsonl: no such file or directory\n"},
		{name: "missing against", args: []string{"--against", "/nonexistent/seeds.jsonl"}, code: 1, outLines: 0,
			errSub: "rougefilter: --against: open /nonexistent/seeds.jsonl: no such file or directory\n"},
		{name: "against wrong field", args: []string{"--against", seeds, "--against-field", "name"}, code: 1, outLines: 0,
			errSub: "seeds.jsonl:1: record 1: field \"name\" missing (choose it with --against-field)\n"},

		// --skip-bad: bad records pass through unfiltered, invalid JSON is skipped
		{name: "skip bad", args: []string{"--skip-bad", "--stats"},
			stdin: `{"instruction":"a b"}` + "\n" + `{"input":"no field"}` + "\n" + `{oops` + "\n" + `{"instruction":7}` + "\n" + `{"instruction":"a b"}` + "\n",
			code:  0, outLines: 3, out: `{"input":"no field"}` + "\n" + `{"instruction":7}`, errSub: "read 5, kept 1, dropped 1, bad 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runMain(t, c.stdin, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errs)
			}
			if c.outLines >= 0 && len(lines(out)) != c.outLines {
				t.Fatalf("%d output lines, want %d:\n%s", len(lines(out)), c.outLines, out)
			}
			if !strings.Contains(out, c.out) {
				t.Fatalf("stdout %q does not contain %q", out, c.out)
			}
			if c.errSub == "" && errs != "" {
				t.Fatalf("unexpected stderr %q", errs)
			}
			if !strings.Contains(errs, c.errSub) {
				t.Fatalf("stderr %q does not contain %q", errs, c.errSub)
			}
			if c.code == 1 && strings.Count(strings.TrimRight(errs, "\n"), "\n") != 0 {
				t.Fatalf("runtime error is not one line: %q", errs)
			}
			if strings.Contains(errs, "goroutine") || strings.Contains(errs, "panic") {
				t.Fatalf("stack trace on stderr: %s", errs)
			}
		})
	}
}

// TestAnnotateMatchesGenerator compares --annotate with the Alpaca
// generator's own loop, run by scripts/fixtures/rougefilter_generator.py
// (numpy argsort/mean) on the sample:
//
//	/usr/bin/python3 scripts/fixtures/rougefilter_generator.py \
//	  testdata/rougefilter/seeds.jsonl testdata/rougefilter/sample.jsonl \
//	  > testdata/rougefilter/expected_annotate.jsonl
//
// np.argsort is not stable, so among equal scores at the edge of the top 10
// the generator's choice of texts is arbitrary: the test compares the scores
// of the top 10 as a list, the texts scoring above the 10th score, and
// avg_similarity_score bit for bit.
func TestAnnotateMatchesGenerator(t *testing.T) {
	want, err := os.ReadFile("../../testdata/rougefilter/expected_annotate.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--annotate", "--against", seeds, sample},
		{"--annotate", "--against", seeds, "-j", "1", "--batch", "3", sample},
		{"--annotate", "--against", seeds, "--reference", sample},
	} {
		out, errs, code := runMain(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		got, exp := lines(out), lines(string(want))
		if len(got) != len(exp) {
			t.Fatalf("%v: %d records, generator kept %d", args, len(got), len(exp))
		}
		type rec struct {
			Instruction string                     `json:"instruction"`
			MSI         json.RawMessage            `json:"most_similar_instructions"`
			Avg         float64                    `json:"avg_similarity_score"`
			Rest        map[string]json.RawMessage `json:"-"`
		}
		for i := range got {
			var g, e rec
			if err := json.Unmarshal([]byte(got[i]), &g); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal([]byte(exp[i]), &e)
			if g.Instruction != e.Instruction || g.Avg != e.Avg {
				t.Fatalf("%v: record %d: got %q avg %v, generator %q avg %v", args, i, g.Instruction, g.Avg, e.Instruction, e.Avg)
			}
			gs, gk := scoresOf(t, g.MSI)
			es, ek := scoresOf(t, e.MSI)
			if !equalFloats(gs, es) {
				t.Fatalf("%v: record %d: top scores %v, generator %v", args, i, gs, es)
			}
			cut := es[len(es)-1]
			for k, v := range ek {
				if v > cut && gk[k] != v {
					t.Fatalf("%v: record %d: %q scores %v in the generator's top, %v here", args, i, k, v, gk[k])
				}
			}
		}
	}
}

func scoresOf(t *testing.T, raw json.RawMessage) ([]float64, map[string]float64) {
	t.Helper()
	m := map[string]float64{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("most_similar_instructions %s: %v", raw, err)
	}
	var s []float64
	for _, v := range m {
		s = append(s, v)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	return s, m
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRejectedAndFiles(t *testing.T) {
	dir := t.TempDir()
	rej := filepath.Join(dir, "rejected.jsonl")
	outPath := filepath.Join(dir, "kept.jsonl.zst")
	_, errs, code := runMain(t, "", "--against", seeds, "--rejected", rej, "-o", outPath, sample)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	f, err := os.Open(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for sc := bufio.NewScanner(zr); sc.Scan(); n++ {
	}
	if n != 31 {
		t.Fatalf("%d kept records in the .zst output, want 31", n)
	}
	data, err := os.ReadFile(rej)
	if err != nil {
		t.Fatal(err)
	}
	rl := lines(string(data))
	if len(rl) != 9 {
		t.Fatalf("%d rejected, want 9", len(rl))
	}
	// the first dropped record is the short poem, closest to the seed poem
	if fieldOf(t, rl[0], "rouge_best") != "Write a poem about the ocean." || fieldOf(t, rl[0], "rouge_score") != 0.8 {
		t.Fatalf("rejected[0] = %s", rl[0])
	}
	for _, l := range rl {
		if s := fieldOf(t, l, "rouge_score").(float64); s <= 0.7 {
			t.Fatalf("rejected with score %v: %s", s, l)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("temp files left behind: %v", ents)
	}
	// zstd input is read transparently: the .zst output filtered again is unchanged
	out, errs, code := runMain(t, "", outPath)
	if code != 0 || len(lines(out)) != 31 {
		t.Fatalf("re-filtering the .zst output: exit %d, %d lines, %s", code, len(lines(out)), errs)
	}
}

func TestFailedRunLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	outPath := filepath.Join(dir, "out.jsonl")
	_, errs, code := runMain(t, `{"instruction":"a"}`+"\n"+`{"x":1}`+"\n", "-o", outPath)
	if code != 1 || !strings.Contains(errs, "record 2") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after a failed run: %v", ents)
	}
}

// brokenPipe fails every write like a closed pipe does.
type brokenPipe struct{}

func (brokenPipe) Write([]byte) (int, error) { return 0, syscall.EPIPE }

func TestBrokenPipeQuiet(t *testing.T) {
	var errb bytes.Buffer
	big := strings.Repeat(`{"instruction":"`+strings.Repeat("word ", 50000)+`"}`+"\n", 3)
	code := Main([]string{"--threshold", "1"}, strings.NewReader(big), brokenPipe{}, &errb)
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d stderr %q", code, errb.String())
	}
}

func TestScore(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.jsonl")
	b := filepath.Join(dir, "b.jsonl")
	os.WriteFile(a, []byte(`{"instruction":"Write a poem about the sea."}`+"\n"+`{"instruction":"x"}`+"\n"), 0o644)
	os.WriteFile(b, []byte(`{"instruction":"write a long poem about the sea"}`+"\n"+`{"text":"x"}`+"\n"), 0o644)
	short := filepath.Join(dir, "short.jsonl")
	os.WriteFile(short, []byte(`{"instruction":"x"}`+"\n"), 0o644)
	cases := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		out    string
		errSub string
	}{
		{name: "fields", args: []string{"score", "--fields", "a,b"}, stdin: `{"a":"the cat sat","b":"the cat sat down"}` + "\n",
			out: `{"a":"the cat sat","b":"the cat sat down","rougeL":{"precision":0.75,"recall":1.0,"fmeasure":0.8571428571428571}}`},
		{name: "empty side", args: []string{"score", "--fields", "a,b"}, stdin: `{"a":"","b":"x"}` + "\n",
			out: `"rougeL":{"precision":0.0,"recall":0.0,"fmeasure":0.0}`},
		{name: "two files", args: []string{"score", "--against-field", "text", a, b}, code: 1,
			errSub: "b.jsonl:1: record 1: field \"text\" missing"},
		{name: "two files skip bad", args: []string{"score", "--skip-bad", "--stats", "--against-field", "instruction", a, b},
			out: `"rougeL":{"precision":0.8571428571428571,"recall":1.0,"fmeasure":0.923076923076923}`, errSub: "1 pairs, 1 bad"},
		{name: "length mismatch", args: []string{"score", a, short}, code: 1, errSub: "has more records than"},
		{name: "help", args: []string{"score", "--help"}, out: "--fields TARGET,PREDICTION"},
		{name: "no pairs", args: []string{"score"}, code: 2, errSub: "give --fields TARGET,PREDICTION, or exactly two files"},
		{name: "bad fields", args: []string{"score", "--fields", "a"}, code: 2, errSub: "--fields wants TARGET,PREDICTION"},
		{name: "missing field", args: []string{"score", "--fields", "a,b"}, stdin: `{"a":"x"}`, code: 1, errSub: "<stdin>:1: record 1: field \"b\" missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runMain(t, c.stdin, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errs)
			}
			if !strings.Contains(out, c.out) {
				t.Fatalf("stdout %q does not contain %q", out, c.out)
			}
			if !strings.Contains(errs, c.errSub) || (c.errSub == "" && errs != "") {
				t.Fatalf("stderr %q, want %q", errs, c.errSub)
			}
		})
	}
}

func TestPyFloat(t *testing.T) {
	// expected strings: repr() in CPython 3.11
	cases := map[float64]string{
		0: "0.0", 1: "1.0", 0.8: "0.8", 1e-05: "1e-05", 0.0001: "0.0001", 1.5e-07: "1.5e-07",
		123456789012345680.0: "1.2345678901234568e+17", 1e16: "1e+16", 9999999999999998.0: "9999999999999998.0",
		0.7000000000000001: "0.7000000000000001", -0.5: "-0.5", 2.0 / 3: "0.6666666666666666",
	}
	for f, want := range cases {
		if got := string(pyFloat(nil, f)); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

// lineWriter reports each write on a channel.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	w.ch <- string(p)
	return len(p), nil
}

// TestStreaming: with a slow producer (seedgen | rougefilter) each kept
// record is written as soon as it is decided, not when the input ends.
func TestStreaming(t *testing.T) {
	pr, pw := io.Pipe()
	out := &lineWriter{ch: make(chan string, 10)}
	var errb bytes.Buffer
	done := make(chan int)
	go func() { done <- Main([]string{"--against", seeds}, pr, out, &errb) }()
	wait := func(want string) {
		t.Helper()
		select {
		case got := <-out.ch:
			if !strings.Contains(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("record %q not written while the input is still open", want)
		}
	}
	io.WriteString(pw, `{"instruction":"Describe a rainbow to a child."}`+"\n")
	wait("rainbow")
	io.WriteString(pw, `{"instruction":"Describe a rainbow to a small child."}`+"\n") // near-duplicate
	io.WriteString(pw, `{"instruction":"Name three rivers in Africa."}`+"\n")
	wait("rivers")
	pw.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

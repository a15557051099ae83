package promptfmt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/alpaca-go/alpaca/pkg/prompt"
)

func runMain(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const (
	noInputHead = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\\n\\n### Instruction:\\n"
	inputHead   = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\\n\\n### Instruction:\\n"
)

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	badTpl := filepath.Join(dir, "bad.json")
	os.WriteFile(badTpl, []byte(`{"prompt_input": "{instruction} {inputs} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`), 0o644)
	noInputTpl := filepath.Join(dir, "noinput.json")
	os.WriteFile(noInputTpl, []byte(`{"prompt_input": "{instruction} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`), 0o644)
	myTpl := filepath.Join(dir, "mine.json")
	os.WriteFile(myTpl, []byte(`{"description": "mine", "prompt_input": "Q: {instruction}\n{input}\nA:", "prompt_no_input": "Q: {instruction}\nA:", "response_split": "A:"}`), 0o644)

	cases := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string // exact, unless it starts with "~" (then: contains)
		stderr string // contains
	}{
		{"no input", []string{"--quiet"}, `{"instruction":"Hi.","output":"Hello."}` + "\n", 0,
			`{"prompt":"` + noInputHead + `Hi.\n\n### Response:\n","completion":"Hello."}` + "\n", ""},
		{"empty input, id kept", []string{"--quiet"}, `{"id":3,"instruction":"Hi.","input":"","output":" x \n","extra":1}`, 0,
			`{"prompt":"` + noInputHead + `Hi.\n\n### Response:\n","completion":" x \n","id":3}` + "\n", ""},
		{"with input", []string{"--quiet"}, `{"instruction":"Add.","input":"1 2","output":"3"}`, 0,
			`{"prompt":"` + inputHead + `Add.\n\n### Input:\n1 2\n\n### Response:\n","completion":"3"}` + "\n", ""},
		{"json array", []string{"--quiet", "--template", "alpaca_short"}, "[\n {\"instruction\": \"A\",\n  \"output\": \"B\"},\n {\"instruction\": \"C\", \"input\": \"D\", \"output\": \"E\"}\n]", 0,
			`{"prompt":"### Instruction:\nA\n\n### Response:\n","completion":"B"}` + "\n" +
				`{"prompt":"### Instruction:\nC\n\n### Input:\nD\n\n### Response:\n","completion":"E"}` + "\n", ""},
		{"keep fields", []string{"--quiet", "--keep", "meta", "--keep", "n", "--template", myTpl}, `{"n":[1, 2],"instruction":"I","output":"O","meta":{"a": "b"},"id":"x"}`, 0,
			`{"prompt":"Q: I\nA:","completion":"O","id":"x","meta":{"a": "b"},"n":[1, 2]}` + "\n", ""},
		{"keep all", []string{"--quiet", "--keep", "*", "--template", myTpl}, `{"n":1,"instruction":"I","output":"O","z":"y","input":""}`, 0,
			`{"prompt":"Q: I\nA:","completion":"O","n":1,"z":"y"}` + "\n", ""},
		{"field names", []string{"--quiet", "--instruction-field", "q", "--input-field", "ctx", "--output-field", "a", "--template", myTpl}, `{"q":"I","ctx":"C","a":"O","instruction":"ignored"}`, 0,
			`{"prompt":"Q: I\nC\nA:","completion":"O"}` + "\n", ""},
		{"infer", []string{"--quiet", "--infer", "--template", myTpl}, `{"instruction":"I"}` + "\n" + `{"instruction":"I","input":"C","output":"O"}`, 0,
			`{"prompt":"Q: I\nA:"}` + "\n" + `{"prompt":"Q: I\nC\nA:"}` + "\n", ""},
		{"escapes kept", []string{"--quiet", "--template", myTpl}, `{"instruction":"a\u00e9\"\\\/","output":"\ud83d\ude00"}`, 0,
			`{"prompt":"Q: a\u00e9\"\\\/\nA:","completion":"\ud83d\ude00"}` + "\n", ""},
		{"extract", []string{"--quiet", "--extract", "--template", myTpl}, `{"text":"Q: I\nA:  resp \n","id":1}` + "\n" + `{"prompt":"Q: I\nA:","completion":" O"}`, 0,
			`{"text":"Q: I\nA:  resp \n","id":1,"output":"resp"}` + "\n" + `{"prompt":"Q: I\nA:","completion":" O","output":"O"}` + "\n", ""},
		{"extract field", []string{"--quiet", "--extract", "--field", "gen", "--output-field", "response"}, `{"gen":"x ### Response:\ny"}`, 0,
			`{"gen":"x ### Response:\ny","response":"y"}` + "\n", ""},
		{"summary", nil, `{"instruction":"I","output":"O"}`, 0, "~completion", "promptfmt: 1 records -> 1 prompts (0 with input), 0 skipped"},

		// bad records
		{"missing instruction", nil, `{"instruction":"I","output":"O"}` + "\n" + `{"output":"O"}`, 1,
			"~\"completion\":\"O\"}\n", "promptfmt: <stdin>:2: record 2: missing field \"instruction\"\n"},
		{"missing output", nil, `{"instruction":"I"}`, 1, "", "<stdin>:1: record 1: missing field \"output\" (use --infer"},
		{"number input", nil, `{"instruction":"I","input":5,"output":"O"}`, 1, "", "record 1: field \"input\" is a number, want a string"},
		{"null output", nil, `{"instruction":"I","output":null}`, 1, "", "record 1: field \"output\" is null, want a string"},
		{"not object", nil, `[1]`, 1, "", "<stdin>:1: record 1: is a number, want a JSON object"},
		{"invalid utf8", nil, "{\"instruction\":\"I\",\"output\":\"O\"}\n{\"instruction\":\"\xff\",\"output\":\"O\"}", 1, "~", "<stdin>:2: record 2: invalid UTF-8 (byte 0xff at offset 16 of the record)"},
		{"invalid utf8 in other field", nil, "{\"instruction\":\"I\",\"output\":\"O\",\"x\":\"\xc3\"}", 1, "", "record 1: invalid UTF-8"},
		{"lone surrogate", nil, `{"instruction":"I\ud800","output":"O"}`, 1, "", "record 1: field \"instruction\": invalid Unicode: unpaired surrogate escape \\ud800"},
		{"invalid json", nil, "{\"instruction\":\"I\",\"output\":\"O\"}\n{\"instruction\":\n", 1, "~", "<stdin>:2: record 2: invalid JSON"},
		{"skip bad", []string{"--skip-bad"}, "{\"output\":\"O\"}\nnot json\n{\"instruction\":\"I\",\"output\":\"O\"}\n{\"instruction\":\"I\",\"output\":7}\n", 0,
			"~\"completion\":\"O\"}\n", "promptfmt: 4 records -> 1 prompts (0 with input), 3 skipped"},
		{"skip bad quiet", []string{"--skip-bad", "--quiet"}, "{\"output\":\"O\"}\n", 0, "", ""},
		{"extract no split", []string{"--extract"}, `{"text":"no marker"}`, 1, "", "record 1: response_split \"### Response:\" of template alpaca not found"},
		{"extract missing field", []string{"--extract"}, `{"other":"x"}`, 1, "", "record 1: missing field \"text\""},
		{"extract skip bad", []string{"--extract", "--skip-bad", "--quiet"}, `{"text":"no marker"}` + "\n" + `{"text":"### Response: ok"}`, 0,
			`{"text":"### Response: ok","output":"ok"}` + "\n", ""},

		// usage
		{"help", []string{"--help"}, "", 0, "~Example:\n  rougefilter generated.jsonl | promptfmt", ""},
		{"help scope", []string{"-h"}, "", 0, "~multi-turn", ""},
		{"list", []string{"--list-templates"}, "", 0, "~alpaca_short", ""},
		{"print template", []string{"--print-template", "--template", "alpaca_short"}, "", 0, "~\"response_split\": \"### Response:\"", ""},
		{"unknown template", []string{"--template", "llama9"}, "", 2, "", "promptfmt: --template llama9: no such built-in template (known: alpaca, alpaca_legacy, alpaca_short, vicuna) or file\nRun 'promptfmt --help' for usage.\n"},
		{"missing template file", []string{"--template", filepath.Join(dir, "nope.json")}, "", 2, "", "no such file"},
		{"bad placeholder", []string{"--template", badTpl}, "", 2, "", "prompt_input: unknown placeholder {inputs}"},
		{"missing placeholder", []string{"--template", noInputTpl}, "", 2, "", "prompt_input: missing placeholder {input}"},
		{"infer and extract", []string{"--infer", "--extract"}, "", 2, "", "cannot be combined"},
		{"unknown flag", []string{"--frobnicate"}, "", 2, "", "flag provided but not defined: -frobnicate"},
		{"workers 0", []string{"-j", "0"}, "", 2, "", "at least 1"},
		{"same fields", []string{"--input-field", "instruction"}, "", 2, "", "must name different fields"},
		{"keep consumed", []string{"--keep", "output"}, "", 2, "", "--keep output: that field is consumed"},
		{"keep prompt", []string{"--keep", "prompt"}, "", 2, "", "one of promptfmt's output fields"},
		{"no such input", []string{filepath.Join(dir, "missing.jsonl")}, "", 1, "", "no such file or directory"},
	}
	for _, c := range cases {
		for _, j := range []string{"1", "2"} {
			t.Run(c.name+"/j"+j, func(t *testing.T) {
				code, out, errs := runMain(t, c.stdin, append([]string{"-j", j}, c.args...)...)
				if code != c.code {
					t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errs)
				}
				if want, ok := strings.CutPrefix(c.stdout, "~"); ok {
					if !strings.Contains(out, want) {
						t.Errorf("stdout %q does not contain %q", out, want)
					}
				} else if out != c.stdout {
					t.Errorf("stdout\n %q\nwant\n %q", out, c.stdout)
				}
				if !strings.Contains(errs, c.stderr) {
					t.Errorf("stderr %q does not contain %q", errs, c.stderr)
				}
				if c.stderr == "" && c.code == 0 && strings.Contains(strings.Join(c.args, " "), "--quiet") && errs != "" {
					t.Errorf("stderr not empty with --quiet: %q", errs)
				}
				if code == 1 && strings.Count(errs, "\n") != 1 {
					t.Errorf("runtime error is not one line: %q", errs)
				}
				if strings.Contains(errs, "goroutine ") || strings.Contains(errs, "panic") {
					t.Errorf("stack trace: %q", errs)
				}
			})
		}
	}
}

// readJSONL decodes every line of s into a generic value.
func readJSONL(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("invalid output line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAgainstReference compares with the records that the Python reference
// (scripts/fixtures/promptfmt_ref.py, Alpaca train.py's str.format_map
// templating) wrote for testdata/sample.jsonl; see scripts/fixtures/promptfmt.sh.
// The same records given as a pretty-printed JSON array give the same output.
func TestAgainstReference(t *testing.T) {
	for _, tc := range []struct{ ref, input string }{
		{"alpaca.jsonl", "sample.jsonl"},
		{"alpaca.jsonl", "sample.json"},
		{"alpaca_legacy.jsonl", "sample.jsonl"},
		{"alpaca_short.jsonl", "sample.json"},
		{"vicuna.jsonl", "sample.jsonl"},
		{"alpaca.infer.jsonl", "sample.jsonl"},
		{"alpaca.extract.jsonl", "ref/alpaca.jsonl"},
	} {
		t.Run(tc.ref+"/"+tc.input, func(t *testing.T) {
			name := strings.TrimSuffix(tc.ref, ".jsonl")
			args := []string{"--quiet", filepath.Join("testdata", tc.input)}
			switch {
			case strings.HasSuffix(name, ".infer"):
				args = append(args, "--infer")
			case strings.HasSuffix(name, ".extract"):
				args = append(args, "--extract")
			default:
				args = append(args, "--template", name)
			}
			code, out, errs := runMain(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			want, err := os.ReadFile(filepath.Join("testdata", "ref", tc.ref))
			if err != nil {
				t.Fatal(err)
			}
			got, exp := readJSONL(t, out), readJSONL(t, string(want))
			if len(got) != len(exp) || len(got) == 0 {
				t.Fatalf("%d records, reference has %d", len(got), len(exp))
			}
			for i := range exp {
				if !reflect.DeepEqual(got[i], exp[i]) {
					t.Errorf("record %d:\n got %v\nwant %v", i+1, got[i], exp[i])
				}
			}
		})
	}
}

// TestRoundTrip: promptfmt | promptfmt --extract gives back every output,
// stripped as Python's str.strip() does (the sample has one output with
// surrounding white space; all others come back byte for byte).
func TestRoundTrip(t *testing.T) {
	src, _ := os.ReadFile(filepath.Join("testdata", "sample.jsonl"))
	for _, tp := range prompt.Builtins() {
		code, mid, errs := runMain(t, string(src), "--quiet", "--template", tp.Name)
		if code != 0 {
			t.Fatal(errs)
		}
		code, back, errs := runMain(t, mid, "--quiet", "--extract", "--template", tp.Name)
		if code != 0 {
			t.Fatal(errs)
		}
		in, got := readJSONL(t, string(src)), readJSONL(t, back)
		if len(in) != len(got) {
			t.Fatalf("%s: %d records back, want %d", tp.Name, len(got), len(in))
		}
		for i := range in {
			if want := prompt.PyStrip(in[i]["output"].(string)); got[i]["output"] != want {
				t.Errorf("%s record %d: %q, want %q", tp.Name, i+1, got[i]["output"], want)
			}
		}
	}
}

// TestAlpacaData runs the 52K Alpaca file through promptfmt and the Python
// reference and compares every record, then checks the round trip.
func TestAlpacaData(t *testing.T) {
	data := filepath.Join(repoRoot(), "..", "shared", "data", "alpaca_data.json")
	if _, err := os.Stat(data); err != nil {
		t.Skip("../shared/data/alpaca_data.json absent: skipping the full-data comparison")
	}
	if testing.Short() {
		t.Skip("-short: skipping the full-data comparison")
	}
	code, out, errs := runMain(t, "", "--quiet", data)
	if code != 0 {
		t.Fatal(errs)
	}
	got := readJSONL(t, out)
	if len(got) != 52002 {
		t.Fatalf("%d records", len(got))
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		ref, err := exec.Command("/usr/bin/python3", filepath.Join(repoRoot(), "scripts", "fixtures", "promptfmt_ref.py"), data).Output()
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		want := readJSONL(t, string(ref))
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("record %d differs from the reference:\n got %v\nwant %v", i+1, got[i], want[i])
			}
		}
	} else {
		t.Log("/usr/bin/python3 absent: reference comparison skipped")
	}
	code, back, errs := runMain(t, out, "--quiet", "--extract")
	if code != 0 {
		t.Fatal(errs)
	}
	var orig []map[string]string
	raw, _ := os.ReadFile(data)
	json.Unmarshal(raw, &orig)
	for i, m := range readJSONL(t, back) {
		if m["output"] != orig[i]["output"] {
			t.Fatalf("round trip record %d: %q, want %q", i+1, m["output"], orig[i]["output"])
		}
	}
}

// TestParallelSameAsSerial: -j 1 and -j 3 give the same bytes, including
// the output written before a bad record and the error itself.
func TestParallelSameAsSerial(t *testing.T) {
	data := string(generate(3000))
	for _, in := range []string{data, strings.Replace(data, `"instruction": "Write a short answer to question 2500 `, `"instruction": 5, "x": "`, 1)} {
		c1, o1, e1 := runMain(t, in, "--quiet", "-j", "1")
		c3, o3, e3 := runMain(t, in, "--quiet", "-j", "3")
		if c1 != c3 || o1 != o3 || e1 != e3 {
			t.Fatalf("-j 1: %d %d bytes %q; -j 3: %d %d bytes %q", c1, len(o1), e1, c3, len(o3), e3)
		}
		if c1 == 1 && (strings.Count(o1, "\n") != 2500 || !strings.Contains(e1, "record 2501: field \"instruction\" is a number")) {
			t.Fatalf("error case: %d lines, %q", strings.Count(o1, "\n"), e1)
		}
	}
}

func TestOutputFile(t *testing.T) {
	dir := t.TempDir()
	in := `{"instruction":"I","output":"O"}`
	for _, name := range []string{"out.jsonl", "out.jsonl.zst"} {
		path := filepath.Join(dir, name)
		code, out, errs := runMain(t, in, "--quiet", "-o", path)
		if code != 0 || out != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".zst") {
			dec, _ := zstd.NewReader(nil)
			if b, err = dec.DecodeAll(b, nil); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.HasSuffix(string(b), `"completion":"O"}`+"\n") {
			t.Fatalf("%s = %q", name, b)
		}
	}
	// a failed run leaves no output file behind
	path := filepath.Join(dir, "fail.jsonl")
	if code, _, _ := runMain(t, in+"\n{}", "--quiet", "-o", path); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*fail*")); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	// --zstd on stdout
	code, out, _ := runMain(t, in, "--quiet", "--zstd")
	if code != 0 || !strings.HasPrefix(out, "\x28\xb5\x2f\xfd") {
		t.Fatalf("--zstd stdout: exit %d %q", code, out)
	}
}

package generate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runBatch(t *testing.T, in string, args ...string) (int, string, string) {
	t.Helper()
	var o, e bytes.Buffer
	code := Main(args, strings.NewReader(in), &o, &e)
	return code, o.String(), e.String()
}

func TestBatchCLI(t *testing.T) {
	dir := tinyModel(t)
	in := `{"instruction":"Name three colors.","id":7}
{"prompt":"Hello","x":[1,2],"completion":"old"}
{"instruction":"Say hi","input":"to Bob"}
{"prompt":"Once upon a time"}
`
	code, out, errs := runBatch(t, in, "--model", dir, "--max-new-tokens", "6", "--threads", "1", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines: %s", len(lines), out)
	}
	m := loadTiny(t)
	prompts := []string{m.renderAlpaca("Name three colors.", ""), "Hello", m.renderAlpaca("Say hi", "to Bob"), "Once upon a time"}
	for i, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		res := m.Generate(&Request{Prompt: m.EncodePrompt(prompts[i]), MaxNewTokens: 6, Sample: DefaultSampleParams()})
		if r["completion"] != res.Text || r["finish_reason"] != res.FinishReason ||
			r["prompt_tokens"] != float64(res.PromptTokens) || r["completion_tokens"] != float64(res.CompletionTokens) {
			t.Errorf("line %d: %s\nwant completion %q finish %s tokens %d+%d", i+1, l, res.Text, res.FinishReason, res.PromptTokens, res.CompletionTokens)
		}
		text, _ := m.Tok.Decode(res.IDs)
		if res.FinishReason == FinishLength && res.Text != text {
			t.Errorf("line %d: text %q, Decode(ids) %q", i+1, res.Text, text)
		}
	}
	if !strings.HasPrefix(lines[0], `{"instruction":"Name three colors.","id":7,"completion":`) ||
		!strings.HasPrefix(lines[1], `{"prompt":"Hello","x":[1,2],"completion":`) {
		t.Errorf("fields not kept in order:\n%s", out)
	}
	// sampling: the output does not depend on how records are batched
	args := []string{"--model", dir, "--max-new-tokens", "8", "--temperature", "1", "--top-k", "50", "--seed", "4", "--quiet"}
	_, a, _ := runBatch(t, in, append(args, "--batch", "1")...)
	_, b, _ := runBatch(t, in, append(args, "--batch", "3")...)
	_, c, _ := runBatch(t, in, append(args[:len(args)-2], "--seed", "5", "--quiet")...)
	if a != b {
		t.Errorf("--batch 1 and 3 differ:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("seeds 4 and 5 give the same samples")
	}
	// -o writes a file
	outFile := filepath.Join(t.TempDir(), "out.jsonl")
	if code, _, e := runBatch(t, in, "--model", dir, "--max-new-tokens", "6", "-o", outFile, "--quiet"); code != 0 {
		t.Fatal(e)
	}
	if got, _ := os.ReadFile(outFile); string(got) != out {
		t.Errorf("-o file differs from stdout")
	}
}

func (m *Model) renderAlpaca(ins, in string) string {
	t, _ := builtinTemplate("alpaca")
	return t.Render(ins, in)
}

func TestBatchErrors(t *testing.T) {
	dir := tinyModel(t)
	long := strings.Repeat("word ", 2000)
	for _, tc := range []struct {
		in   string
		args []string
		code int
		msg  string
	}{
		{`{"prompt":"a"}` + "\n" + `{"text":"b"}` + "\n", nil, 1, `stdin:2: record 2: no "prompt" or "instruction" string`},
		{`{"prompt":"a"}` + "\n" + `{"prompt":` + "\n", nil, 1, "stdin:2"},
		{`{"prompt":3}` + "\n", nil, 1, "stdin:1: record 1"},
		{`{"prompt":"` + long + `"}` + "\n", nil, 1, "prompt too long"},
		{"", []string{"--temperature", "-1"}, 2, "temperature"},
		{"", []string{"--template", "nope"}, 2, "no such built-in template"},
		{"", []string{"--max-new-tokens", "0"}, 2, "max-new-tokens"},
	} {
		args := append([]string{"--model", dir, "--quiet"}, tc.args...)
		code, out, errs := runBatch(t, tc.in, args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) || strings.Contains(errs, "goroutine") {
			t.Errorf("%q %v: exit %d, stderr %q (want %d, %q)", tc.in, tc.args, code, errs, tc.code, tc.msg)
		}
		if code != 0 && out != "" {
			t.Errorf("%q: output on failure: %q", tc.in, out)
		}
	}
	if code, _, errs := runBatch(t, "", "--max-new-tokens", "3"); code != 2 || !strings.Contains(errs, "--model") {
		t.Errorf("no --model: exit %d %q", code, errs)
	}
}

func TestBenchCLI(t *testing.T) {
	var o, e bytes.Buffer
	if code := Main([]string{"bench", "--model", tinyModel(t), "--threads", "1", "--prompt-tokens", "20", "--new-tokens", "4"}, nil, &o, &e); code != 0 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	var v map[string]any
	if err := json.Unmarshal(o.Bytes(), &v); err != nil {
		t.Fatalf("%q: %v", o.String(), err)
	}
	for _, k := range []string{"prefill_tok_s", "decode_tok_s"} {
		if x, ok := v[k].(float64); !ok || !(x > 0) {
			t.Errorf("%s = %v", k, v[k])
		}
	}
	if v["prompt_tokens"] != 20.0 || v["new_tokens"] != 4.0 {
		t.Errorf("%v", v)
	}
	if code := Main([]string{"bench", "--model", tinyModel(t), "--prompt-tokens", "5000"}, nil, &o, &e); code != 2 {
		t.Errorf("prompt longer than the context: exit %d", code)
	}
}

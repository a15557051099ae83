package tokenize

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

var testModel string // a small tokenizer trained in TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenize-test")
	if err != nil {
		panic(err)
	}
	testModel = filepath.Join(dir, "tok.model")
	// Train on the test prompts themselves, repeated: a small, self-made model.
	var corpus strings.Builder
	b, err := os.ReadFile(filepath.Join("testdata", "prompts.jsonl"))
	if err != nil {
		panic(err)
	}
	for i := 0; i < 20; i++ {
		corpus.Write(b)
	}
	cp := filepath.Join(dir, "corpus.jsonl")
	os.WriteFile(cp, []byte(corpus.String()), 0o644)
	var out, errb bytes.Buffer
	if code := Main([]string{"train", "--quiet", "--vocab-size", "500", "--input", cp, "-o", testModel}, nil, &out, &errb); code != 0 {
		panic("train: " + errb.String())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func readStream(t *testing.T, b []byte) (tokstream.Header, []tokstream.Example) {
	t.Helper()
	r, err := tokstream.NewReader(bytes.NewReader(b), "test")
	if err != nil {
		t.Fatal(err)
	}
	var exs []tokstream.Example
	for {
		ex, err := r.Next()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatal(err)
		}
		exs = append(exs, ex)
	}
	return r.Header(), exs
}

type pc struct{ Prompt, Completion string }

func testRecords(t *testing.T) []pc {
	b, _ := os.ReadFile(filepath.Join("testdata", "prompts.jsonl"))
	var out []pc
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r pc
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestStageSemantics checks train.py's semantics on every record:
// ids = BOS + encode(prompt+completion) + EOS, first 1+len(encode(prompt))
// masked, truncation losing EOS, --drop-long, --separate.
func TestStageSemantics(t *testing.T) {
	m, err := sentencepiece.Load(testModel)
	if err != nil {
		t.Fatal(err)
	}
	recs := testRecords(t)
	in, _ := os.ReadFile(filepath.Join("testdata", "prompts.jsonl"))
	for _, c := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"maxlen", []string{"--max-len", "20"}},
		{"droplong", []string{"--max-len", "30", "--drop-long"}},
		{"separate", []string{"--separate"}},
		{"j1", []string{"-j", "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--model", testModel, "--quiet"}, c.args...)
			out, stderr, code := run(t, string(in), args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			h, exs := readStream(t, []byte(out))
			if h.Fingerprint != m.Fingerprint || h.VocabSize != m.VocabSize() || h.BOS != 1 || h.EOS != 2 || h.IDWidth != 2 {
				t.Errorf("header %+v", h)
			}
			k := 0
			for _, r := range recs {
				prompt := append([]int32{1}, m.Encode(r.Prompt)...)
				var ids []int32
				if c.name == "separate" {
					e := m.NewEncoder()
					ids = e.AppendContinuation(slices.Clone(prompt), r.Completion)
				} else {
					ids = append([]int32{1}, m.Encode(r.Prompt+r.Completion)...)
				}
				ids = append(ids, 2)
				limit := map[string]int{"maxlen": 20, "droplong": 30}[c.name]
				if limit > 0 && len(ids) > limit {
					if c.name == "droplong" {
						continue
					}
					ids = ids[:limit]
				}
				if k >= len(exs) {
					t.Fatalf("only %d examples", len(exs))
				}
				ex := exs[k]
				k++
				if !slices.Equal(ex.IDs, ids) {
					t.Errorf("record %d ids\n got %v\nwant %v", k, ex.IDs, ids)
				}
				for i, mk := range ex.Mask {
					if mk != (i >= len(prompt)) {
						t.Errorf("record %d: mask[%d] = %v with prompt length %d", k, i, mk, len(prompt))
						break
					}
				}
			}
			if k != len(exs) {
				t.Errorf("%d examples written, want %d", len(exs), k)
			}
		})
	}
}

func TestDecodeAndStats(t *testing.T) {
	in, _ := os.ReadFile(filepath.Join("testdata", "prompts.jsonl"))
	dir := t.TempDir()
	tok := filepath.Join(dir, "t.tok.zst")
	if _, e, code := run(t, string(in), "--model", testModel, "--quiet", "-o", tok, "--max-len", "40"); code != 0 {
		t.Fatal(e)
	}
	out, e, code := run(t, "", "--decode", tok, "--model", testModel, "--ids")
	if code != 0 {
		t.Fatal(e)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	recs := testRecords(t)
	if len(lines) != len(recs) {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		var d struct {
			Prompt, Completion string
			Tokens             int
			EOS                bool
			Mask               string
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatal(err)
		}
		if d.Prompt != recs[i].Prompt && d.Tokens < 40 {
			t.Errorf("record %d prompt %q, want %q", i+1, d.Prompt, recs[i].Prompt)
		}
		if d.Tokens < 40 && d.Completion != recs[i].Completion {
			t.Errorf("record %d completion %q, want %q", i+1, d.Completion, recs[i].Completion)
		}
		if d.Tokens < 40 && !d.EOS || d.Tokens == 40 && d.EOS {
			t.Errorf("record %d: %d tokens, eos %v", i+1, d.Tokens, d.EOS)
		}
		if len(d.Mask) != d.Tokens {
			t.Errorf("mask %q for %d tokens", d.Mask, d.Tokens)
		}
	}
	// The tokenizer path recorded in the stream is enough to decode.
	if _, e, code := run(t, "", "--decode", tok); code != 0 {
		t.Errorf("decode without --model: %s", e)
	}
	out, e, code = run(t, "", "stats", "--json", tok)
	if code != 0 {
		t.Fatal(e)
	}
	var st StreamStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Examples != int64(len(recs)) || st.LimitLen != 40 || st.Truncated < 1 {
		t.Errorf("stats %+v", st)
	}
	if out, _, code := run(t, "", "stats", tok); code != 0 || !strings.Contains(out, "masked share") {
		t.Errorf("text stats: %q", out)
	}
}

// TestErrors: every bad input gives a one-line message and the right code.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	good, _, _ := run(t, `{"prompt":"a","completion":"b"}`+"\n", "--model", testModel, "--quiet")
	trunc := filepath.Join(dir, "trunc.tok")
	os.WriteFile(trunc, []byte(good[:len(good)-10]), 0o644)
	foreign := filepath.Join(dir, "foreign.tok")
	os.WriteFile(foreign, []byte("PK\x03\x04 this is a zip file, not a stream"), 0o644)
	other := filepath.Join(dir, "other.model")
	b, _ := os.ReadFile(testModel)
	os.WriteFile(other, append(b, 0x98, 0x06, 0x01), 0o644) // unknown field 99: same pieces, another fingerprint
	okStream := filepath.Join(dir, "ok.tok")
	os.WriteFile(okStream, []byte(good), 0o644)
	t.Setenv(EnvTokenizer, "")
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"no model", `{"prompt":"a","completion":"b"}`, nil, 2, "no tokenizer"},
		{"missing model", "", []string{"--model", filepath.Join(dir, "nope.model")}, 1, "no such file"},
		{"not a model", "", []string{"--model", foreign}, 1, "not a SentencePiece model"},
		{"bad json", "{oops\n", []string{"--model", testModel}, 1, "<stdin>:1: record 1: invalid JSON"},
		{"no prompt", `{"completion":"b"}` + "\n", []string{"--model", testModel}, 1, `record 1: no "prompt" field`},
		{"not string", `{"prompt":1,"completion":"b"}` + "\n", []string{"--model", testModel}, 1, "record 1"},
		{"bad max-len", "", []string{"--model", testModel, "--max-len", "-3"}, 2, "--max-len"},
		{"unknown flag", "", []string{"--frobnicate"}, 2, "frobnicate"},
		{"truncated stream", "", []string{"stats", trunc}, 1, "truncated"},
		{"foreign stream", "", []string{"stats", foreign}, 1, "not a token stream"},
		{"decode foreign", "", []string{"--decode", "--model", testModel, foreign}, 1, "not a token stream"},
		{"decode wrong model", "", []string{"--decode", "--model", other, okStream}, 1, "another tokenizer"},
		{"train no vocab", "x\n", []string{"train", "-o", filepath.Join(dir, "x.model")}, 2, "--vocab-size"},
		{"train tiny vocab", "hello\n", []string{"train", "--vocab-size", "10", "-o", filepath.Join(dir, "x.model")}, 1, "too small"},
		{"decode bad id", "1 2 x\n", []string{"decode", "--model", testModel}, 1, `line 1: "x" is not an id`},
		{"decode id range", "1 99999\n", []string{"decode", "--model", testModel}, 1, "outside the vocabulary"},
		{"encode bad format", "", []string{"encode", "--model", testModel, "--output-format", "json"}, 2, "--output-format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := run(t, c.stdin, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, stderr)
			}
			if !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q does not mention %q", stderr, c.msg)
			}
			if strings.Contains(stderr, "goroutine") || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
				t.Errorf("stderr is not a short message: %q", stderr)
			}
			if c.code == 2 && out != "" {
				t.Errorf("stdout on usage error: %q", out)
			}
		})
	}
}

func TestSkipBad(t *testing.T) {
	in := `{"prompt":"a","completion":"b"}` + "\n" + `{"prompt":3}` + "\n" + `{"prompt":"c","completion":"d"}` + "\n"
	out, stderr, code := run(t, in, "--model", testModel, "--skip-bad")
	if code != 0 {
		t.Fatal(stderr)
	}
	_, exs := readStream(t, []byte(out))
	if len(exs) != 2 || !strings.Contains(stderr, "1 skipped") {
		t.Errorf("%d examples, stderr %q", len(exs), stderr)
	}
}

func TestHelp(t *testing.T) {
	for _, sub := range [][]string{{"--help"}, {"train", "--help"}, {"stats", "--help"}, {"encode", "--help"}, {"decode", "--help"}} {
		out, _, code := run(t, "", sub...)
		if code != 0 || !strings.Contains(out, "Example:") {
			t.Errorf("%v: exit %d, %q", sub, code, out)
		}
	}
}

// TestEncodeDecodeLines: encode then decode gives the lines back, and the
// JSONL mode adds ids that match the text mode.
func TestEncodeDecodeLines(t *testing.T) {
	text := "Hello world\n  two  spaces\n\nCJK 中文 and emoji 😀\n"
	ids, e, code := run(t, text, "encode", "--model", testModel)
	if code != 0 {
		t.Fatal(e)
	}
	if n := strings.Count(ids, "\n"); n != 4 {
		t.Fatalf("%d lines of ids: %q", n, ids)
	}
	back, e, code := run(t, ids, "decode", "--model", testModel)
	if code != 0 {
		t.Fatal(e)
	}
	if back != text {
		t.Errorf("decode(encode) = %q, want %q", back, text)
	}
	js, e, code := run(t, `{"text":"Hello world","k":1}`+"\n", "encode", "--model", testModel, "--field", "text")
	if code != 0 {
		t.Fatal(e)
	}
	first := strings.Fields(strings.Split(ids, "\n")[0])
	if !strings.Contains(js, `"ids":[`+strings.Join(first, ",")+`]`) || !strings.Contains(js, `"k":1`) {
		t.Errorf("jsonl encode %q (text mode %v)", js, first)
	}
}

// FuzzStreamInput: arbitrary bytes as a token stream never panic and give
// either a result or a one-line error naming the input.
func FuzzStreamInput(f *testing.F) {
	good := func() []byte {
		var out, errb bytes.Buffer
		Main([]string{"--model", testModel, "--quiet"}, strings.NewReader(`{"prompt":"a b","completion":"c"}`+"\n"), &out, &errb)
		return out.Bytes()
	}()
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte("ALPTOKS\x00\x02\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out, errb bytes.Buffer
		code := Main([]string{"stats"}, bytes.NewReader(b), &out, &errb)
		if code != 0 && (!strings.HasPrefix(errb.String(), "tokenize stats: <stdin>") || strings.Count(errb.String(), "\n") != 1) {
			t.Fatalf("exit %d, stderr %q", code, errb.String())
		}
	})
}

// TestEncodeDecodeMatchSpmBinaries: `tokenize encode`/`decode` print what
// spm_encode --output_format=id|piece and spm_decode --input_format=id print,
// byte for byte (CRLF, empty lines, a last line without newline included).
func TestEncodeDecodeMatchSpmBinaries(t *testing.T) {
	if _, err := exec.LookPath("spm_encode"); err != nil {
		t.Skip("spm_encode not installed (apt-get install sentencepiece)")
	}
	b, _ := os.ReadFile(filepath.Join("testdata", "prompts.jsonl"))
	text := "hello world\r\nsecond  line \r\n\r\n\tcafé 中文 😀 \x01\n" + string(b) + "last line"
	for _, format := range []string{"id", "piece"} {
		cmd := exec.Command("spm_encode", "--model="+testModel, "--output_format="+format)
		cmd.Stdin = strings.NewReader(text)
		want, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		got, e, code := run(t, text, "encode", "--model", testModel, "--output-format", format)
		if code != 0 {
			t.Fatal(e)
		}
		if got != string(want) {
			t.Errorf("%s: tokenize encode differs from spm_encode:\n got %q\nwant %q", format, got, want)
		}
		if format == "id" {
			cmd := exec.Command("spm_decode", "--model="+testModel, "--input_format=id")
			cmd.Stdin = strings.NewReader(got)
			wantText, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			gotText, e, code := run(t, got, "decode", "--model", testModel)
			if code != 0 {
				t.Fatal(e)
			}
			if gotText != string(wantText) {
				t.Errorf("tokenize decode differs from spm_decode:\n got %q\nwant %q", gotText, wantText)
			}
		}
	}
}

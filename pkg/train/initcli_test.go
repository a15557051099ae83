package train

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// sharedTokenizer finds ../shared/data/llama-tokenizer.model from the
// module root, or skips.
func sharedLlamaTokenizer(t *testing.T) string {
	t.Helper()
	return testutil.SharedData(t, "llama-tokenizer.model")
}

func runInitCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := InitMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestInitCLI(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, []byte(`{"hidden_size":32,"intermediate_size":40,"num_hidden_layers":1,"num_attention_heads":4,
		"num_key_value_heads":2,"vocab_size":50,"tie_word_embeddings":true}`), 0o644)
	badTok := filepath.Join(dir, "bad.model")
	os.WriteFile(badTok, []byte("\xff\xff\xff"), 0o644)
	cases := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string
		vocab   int
		layers  int
		tied    bool
		hasTokz bool
	}{
		{"help", []string{"--help"}, 0, "Example:", "", 0, 0, false, false},
		{"no source", []string{"--out", dir + "/x"}, 2, "", "exactly one of", 0, 0, false, false},
		{"two sources", []string{"--preset", "tiny", "--config", cfgPath, "--out", dir + "/x"}, 2, "", "exactly one of", 0, 0, false, false},
		{"no out", []string{"--preset", "tiny"}, 2, "", "--out DIR is required", 0, 0, false, false},
		{"bad preset", []string{"--preset", "huge", "--out", dir + "/x"}, 2, "", "unknown preset", 0, 0, false, false},
		{"stray arg", []string{"--preset", "tiny", "--out", dir + "/x", "extra"}, 2, "", "unexpected argument", 0, 0, false, false},
		{"missing config", []string{"--config", dir + "/nope.json", "--out", dir + "/x"}, 1, "", "nope.json", 0, 0, false, false},
		{"bad tokenizer", []string{"--preset", "tiny", "--tokenizer", badTok, "--out", dir + "/x"}, 1, "", "not a sentencepiece model", 0, 0, false, false},
		{"preset vocab", []string{"--preset", "tiny", "--vocab", "100", "--out", dir + "/p", "--seed", "3"}, 0, "", "wrote", 100, 2, false, false},
		{"config pad", []string{"--config", cfgPath, "--out", dir + "/c", "--add-pad-token", "--dtype", "bf16"}, 0, "", "pad token id 50", 51, 1, true, false},
		{"resize existing", []string{"--model", dir + "/p", "--add-pad-token", "--out", dir + "/p2", "--quiet"}, 0, "", "", 101, 2, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runInitCLI(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("code %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			if tc.code == 2 && strings.Count(errs, "\n") > 2 {
				t.Errorf("usage error is not short: %q", errs)
			}
			if tc.vocab == 0 {
				return
			}
			outDir := tc.args[len(tc.args)-1]
			for i, a := range tc.args {
				if a == "--out" {
					outDir = tc.args[i+1]
				}
			}
			m, err := llama.Load(outDir)
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.VocabSize != tc.vocab || m.Config.NumHiddenLayers != tc.layers || m.Config.TieWordEmbeddings != tc.tied {
				t.Errorf("config %+v", m.Config)
			}
		})
	}
}

func TestInitCLIWithLlamaTokenizer(t *testing.T) {
	tok := sharedLlamaTokenizer(t)
	n, err := CountSentencePieces(tok)
	if err != nil || n != 32000 {
		t.Fatalf("pieces %d err %v, want 32000", n, err)
	}
	out := filepath.Join(t.TempDir(), "m")
	code, _, errs := runInitCLI("--preset", "tiny", "--tokenizer", tok, "--add-pad-token", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m, err := llama.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.VocabSize != 32001 || m.TokenizerPath == "" {
		t.Errorf("vocab %d tokenizer %q", m.Config.VocabSize, m.TokenizerPath)
	}
	a, _ := os.ReadFile(tok)
	b, _ := os.ReadFile(m.TokenizerPath)
	if !bytes.Equal(a, b) {
		t.Errorf("tokenizer.model is not a copy")
	}
	// a config whose vocab does not match the tokenizer
	cfg := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(cfg, []byte(`{"hidden_size":16,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":100}`), 0o644)
	if code, _, errs := runInitCLI("--config", cfg, "--tokenizer", tok, "--out", out+"2"); code != 1 || !strings.Contains(errs, "32000 pieces") {
		t.Errorf("vocab mismatch: %d %s", code, errs)
	}
}

func FuzzCountSentencePieces(f *testing.F) {
	f.Add([]byte("\x0a\x03\x0a\x01a\x0a\x00"))
	f.Add([]byte("\x10\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "m")
		os.WriteFile(p, data, 0o644)
		CountSentencePieces(p) // must not panic
	})
}

// trainer init with a hostile config.json: one line, no crash.
func TestInitHostileConfig(t *testing.T) {
	dir := t.TempDir()
	for i, body := range []string{
		`{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":2147483648}`,
		`{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1000000000,"num_attention_heads":4,"vocab_size":100}`,
	} {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(body), 0o644)
		code, _, errs := runInitCLI("--config", p, "--out", filepath.Join(dir, "out"), "--quiet")
		if code == 0 || !strings.Contains(errs, "above the limit") || strings.Count(errs, "\n") > 2 {
			t.Errorf("case %d: exit %d, stderr %q", i, code, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Errorf("a model was written")
	}
}

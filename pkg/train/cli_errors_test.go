package train

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	good := filepath.Join(dir, "good.bin")
	writeStream(t, good, testVocab, fp, 12, 1)
	wrongVocab := filepath.Join(dir, "vocab.bin")
	writeStream(t, wrongVocab, testVocab+5, fp, 4, 1)
	padVocab := filepath.Join(dir, "pad.bin") // stream without the added pad token
	writeStream(t, padVocab, testVocab-1, fp, 4, 1)
	otherTok := filepath.Join(dir, "tok.bin")
	writeStream(t, otherTok, testVocab, bytes.Repeat([]byte{7}, 32), 4, 1)
	b, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "trunc.bin")
	os.WriteFile(truncated, b[:len(b)-30], 0o644)
	notStream := filepath.Join(dir, "x.jsonl")
	os.WriteFile(notStream, []byte(`{"instruction":"hi"}`+"\n"), 0o644)
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, []byte("x"), 0o644)
	done := filepath.Join(dir, "done")
	if code, _, e := runCLI("--model", base, "--data", good, "--out", done, "--max-steps", "2", "--quiet", "--save-every", "1"); code != 0 {
		t.Fatalf("setup run: %s", e)
	}
	// an unfinished run with checkpoint 1: no final model, no end checkpoint 2
	os.Remove(filepath.Join(done, "config.json"))
	os.RemoveAll(filepath.Join(done, "checkpoint-2"))

	out := func(name string) string { return filepath.Join(dir, "o-"+name) }
	std := func(name string, extra ...string) []string {
		return append([]string{"--model", base, "--out", out(name), "--max-steps", "1", "--quiet"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no model", []string{"--data", good, "--out", out("a")}, 2, "--model DIR is required"},
		{"no out", []string{"--data", good, "--model", base}, 2, "--out DIR is required"},
		{"vocab mismatch", std("v", "--data", wrongVocab), 1, "vocabulary is 45 but the model in " + base + " has 40"},
		{"pad vocab ok", std("p", "--data", padVocab), 0, ""},
		{"batch tokens ok", std("bt", "--data", good, "--batch-tokens", "40", "--max-steps", "3"), 0, ""},
		{"grad accum hf ok", std("ga", "--data", good, "--micro-batch", "2", "--grad-accum", "3", "--no-packing", "--loss-reduction", "hf"), 0, ""},
		{"bf16 final ok", std("bf", "--data", good, "--save-dtype", "bf16"), 0, ""},
		{"tokenizer mismatch", std("t", "--data", otherTok), 1, "was made with tokenizer 070707070707… but the model in " + base + " has tokenizer.model"},
		{"truncated stream", std("tr", "--data", truncated), 1, "truncated token stream"},
		{"not a stream", std("ns", "--data", notStream), 1, "not a token stream"},
		{"missing data", std("md", "--data", filepath.Join(dir, "nope.bin")), 1, "nope.bin: no such file"},
		{"cuda", std("c", "--data", good, "--device", "cuda", "--cuda-lib", filepath.Join(dir, "nope.so")), 1, "make cuda"},
		{"bad device", std("d", "--data", good, "--device", "tpu"), 2, `--device "tpu"`},
		{"two batch sizes", std("b", "--data", good, "--batch-tokens", "100", "--batch-size", "4"), 2, "give one"},
		{"accum mismatch", std("g", "--data", good, "--batch-size", "10", "--micro-batch", "2", "--grad-accum", "4"), 2, "is not --micro-batch 2 × --grad-accum 4"},
		{"bad reduction", std("r", "--data", good, "--loss-reduction", "sum"), 2, `unknown loss reduction "sum"`},
		{"bad schedule", std("s", "--data", good, "--schedule", "step"), 2, `unknown learning-rate schedule "step"`},
		{"seq too long", std("l", "--data", good, "--seq-len", "100000"), 2, "exceeds the model's max_position_embeddings"},
		{"positional", std("x", good), 2, "the token stream goes in --data or stdin"},
		{"out exists", []string{"--model", base, "--data", good, "--out", done}, 2, "already holds checkpoints (checkpoint-1)"},
		{"out not writable", []string{"--model", base, "--data", good, "--out", filepath.Join(blocker, "sub"), "--max-steps", "1", "--quiet"}, 1, "not a directory"},
		{"resume other lr", []string{"--resume", done, "--data", good, "--lr", "1e-3"}, 1, "lr 2e-05 in the checkpoint, 0.001 now"},
		{"resume other data", []string{"--resume", done, "--data", padVocab}, 1, "was trained on other data"},
		{"resume other model", []string{"--resume", done, "--data", good, "--model", out("x")}, 2, "leave out --model"},
		{"resume nothing", []string{"--resume", base, "--data", good}, 1, "holds no trainer checkpoint"},
		{"nan", std("nan", "--data", good, "--lr", "1e30", "--schedule", "constant", "--warmup-steps", "0", "--max-steps", "20", "--save-every", "1", "--batch-size", "4"), 1,
			"step 2: loss is NaN; stopped without saving this step (last good checkpoint: " + filepath.Join(out("nan"), "checkpoint-1") + ")"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, stderr, tc.code, tc.want)
			}
			if tc.code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("error is not one line: %q", stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace: %s", stderr)
			}
		})
	}
	// the NaN run kept its last good checkpoint and wrote nothing for step 2
	if _, err := os.Stat(filepath.Join(out("nan"), "checkpoint-1", StateFile)); err != nil {
		t.Errorf("last good checkpoint: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out("nan"), "checkpoint-2")); err == nil {
		t.Error("checkpoint-2 written after the NaN")
	}
}

func TestCLIStdinAndHelp(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "t.bin")
	writeStream(t, data, testVocab, fp, 6, 1)
	b, _ := os.ReadFile(data)
	var o, e bytes.Buffer
	code := Main([]string{"--model", base, "--out", filepath.Join(dir, "out"), "--max-steps", "2"}, bytes.NewReader(b), &o, &e)
	if code != 0 || !strings.Contains(e.String(), "from <stdin>") || !strings.Contains(e.String(), "done: 2 steps") {
		t.Errorf("stdin run: %d %q", code, e.String())
	}
	if o.Len() != 0 {
		t.Errorf("stdout not empty: %q", o.String())
	}
	// a zstd-compressed stream reads the same (same data hash as the plain one)
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(b)
	zw.Close()
	zpath := filepath.Join(dir, "t.bin.zst")
	os.WriteFile(zpath, z.Bytes(), 0o644)
	dz, err := OpenDataset(zpath)
	if err != nil {
		t.Fatal(err)
	}
	dp, _ := OpenDataset(data)
	if dz.Hash != dp.Hash || len(dz.Examples) != 6 {
		t.Errorf("zstd stream: %d examples, hash %s vs %s", len(dz.Examples), dz.Hash, dp.Hash)
	}
	for _, args := range [][]string{{"--help"}, {"plot", "--help"}, {"init", "--help"}} {
		code, stdout, _ := runCLI(args...)
		if code != 0 || !strings.Contains(stdout, "Example:") {
			t.Errorf("%v: exit %d, %q", args, code, stdout)
		}
	}
}

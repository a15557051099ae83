package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// testVocab is the vocabulary of the tiny test models and streams.
const testVocab = 40

// makeModel writes a tiny LLaMA (HF init, seed 1) with a stand-in
// tokenizer.model (its bytes only matter for the fingerprint) to dir.
func makeModel(t testing.TB, dir string, vocab int) []byte {
	t.Helper()
	cfg, err := llama.Preset("tiny", vocab)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 32, 64, 4, 2
	m := llama.New(cfg, 1)
	tok := filepath.Join(t.TempDir(), "tokenizer.model")
	content := []byte("stand-in tokenizer for tests")
	if err := os.WriteFile(tok, content, 0o644); err != nil {
		t.Fatal(err)
	}
	m.TokenizerPath = tok
	if err := m.Save(dir, "float32"); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(content)
	return s[:]
}

// writeStream writes n synthetic examples (prompt masked, completion
// counting up) as a token stream.
func writeStream(t testing.TB, path string, vocab int, fp []byte, n int, seed int64) {
	t.Helper()
	var buf bytes.Buffer
	h := tokstream.Header{VocabSize: vocab, BOS: 1, EOS: 2, Pad: -1}
	copy(h.Fingerprint[:], fp)
	w, err := tokstream.NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(seed))
	for i := 0; i < n; i++ {
		ex := tokstream.Example{IDs: []int32{1}, Mask: []bool{false}}
		for j := 0; j < 1+r.Intn(4); j++ {
			ex.IDs = append(ex.IDs, int32(3+r.Intn(vocab-3)))
			ex.Mask = append(ex.Mask, false)
		}
		tok := ex.IDs[len(ex.IDs)-1]
		for j := 0; j < 2+r.Intn(6); j++ {
			tok = 3 + (tok-3+1)%int32(vocab-3)
			ex.IDs = append(ex.IDs, tok)
			ex.Mask = append(ex.Mask, true)
		}
		ex.IDs = append(ex.IDs, 2)
		ex.Mask = append(ex.Mask, true)
		if err := w.Write(ex); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func readMetricLosses(t *testing.T, path string) []float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Step int     `json:"step"`
			Loss float64 `json:"loss"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Step != i+1 {
			t.Fatalf("%s line %d has step %d", path, i+1, r.Step)
		}
		out = append(out, r.Loss)
	}
	return out
}

// TestCLIResumeBitExact: 20 steps straight vs 10 + --resume + 10 with the
// real (tiny) LLaMA: the same losses and byte-identical weights.
func TestCLIResumeBitExact(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 40, 1)
	common := []string{"--model", base, "--data", data, "--batch-size", "4", "--micro-batch", "2",
		"--seq-len", "24", "--epochs", "2", "--lr", "3e-3", "--quiet", "-j", "1"} // 10 steps per epoch

	straight := filepath.Join(dir, "straight")
	if code, _, stderr := runCLI(append(common, "--out", straight, "--metrics", straight+".jsonl", "--save-every", "20")...); code != 0 {
		t.Fatalf("straight run: %d %s", code, stderr)
	}
	// The interrupted run: checkpoints every 10 steps; training is cut
	// off by deleting everything after checkpoint-10.
	split := filepath.Join(dir, "split")
	if code, _, stderr := runCLI(append(common, "--out", split, "--metrics", split+".jsonl", "--save-every", "10")...); code != 0 {
		t.Fatalf("split run: %d %s", code, stderr)
	}
	ents, _ := os.ReadDir(split)
	for _, e := range ents {
		if e.Name() != "checkpoint-10" {
			os.RemoveAll(filepath.Join(split, e.Name()))
		}
	}
	// no -j: the resumed run takes the checkpoint's thread count (the CPU
	// results depend on how the work is split)
	code, _, stderr := runCLI("--resume", split, "--data", data, "--metrics", split+".jsonl", "--quiet")
	if code != 0 {
		t.Fatalf("resume: %d %s", code, stderr)
	}
	a, b := readMetricLosses(t, straight+".jsonl"), readMetricLosses(t, split+".jsonl")
	if len(a) != 20 || len(b) != 20 {
		t.Fatalf("%d and %d metric lines, want 20", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("step %d: loss %v straight, %v resumed", i+1, a[i], b[i])
		}
	}
	if a[19] >= a[0] {
		t.Errorf("loss did not fall: %v → %v", a[0], a[19])
	}
	// the final model holds only the model; the optimizer state is in the
	// run's last checkpoint
	for _, f := range []string{"model.safetensors", "tokenizer.model", "config.json", "generation_config.json", "checkpoint-20/optimizer.safetensors"} {
		x, err1 := os.ReadFile(filepath.Join(straight, f))
		y, err2 := os.ReadFile(filepath.Join(split, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%v %v", err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between the straight and the resumed run", f)
		}
	}
	// resuming a finished run does nothing
	code, _, stderr = runCLI("--resume", split, "--data", data)
	if code != 0 || !strings.Contains(stderr, "already finished") {
		t.Errorf("resume of a finished run: %d %q", code, stderr)
	}
}

// TestOverfitTinyLlama: the tiny model learns a small dataset to near-zero loss.
func TestOverfitTinyLlama(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 8, 2)
	out := filepath.Join(dir, "out")
	code, _, stderr := runCLI("--model", base, "--data", data, "--out", out, "--metrics", out+".jsonl",
		"--batch-size", "8", "--seq-len", "64", "--max-steps", "150", "--lr", "1e-2", "--schedule", "constant",
		"--warmup-steps", "5", "--quiet")
	if code != 0 {
		t.Fatalf("%d %s", code, stderr)
	}
	l := readMetricLosses(t, out+".jsonl")
	if first, last := l[0], l[len(l)-1]; !(first > 3 && last < 0.05) {
		t.Errorf("loss %v → %v, want > 3 → < 0.05", first, last)
	}
}

package train

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// readMetricLines splits a metrics file into training losses (by step) and
// evaluation losses (step -> eval_loss).
func readMetricLines(t *testing.T, path string) (losses []float64, evals map[int]float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	evals = map[int]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Step     int      `json:"step"`
			Loss     *float64 `json:"loss"`
			EvalLoss *float64 `json:"eval_loss"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.EvalLoss != nil:
			evals[r.Step] = *r.EvalLoss
		case r.Loss != nil:
			if r.Step != len(losses)+1 {
				t.Fatalf("%s: step %d after %d steps", path, r.Step, len(losses))
			}
			losses = append(losses, *r.Loss)
		default:
			t.Fatalf("%s: line %q", path, line)
		}
	}
	return losses, evals
}

// TestCLILoRAResumeBitExact: a LoRA run (dropout on, a held-out split
// evaluated every 5 steps) straight vs cut after checkpoint-10 and
// resumed: the same losses, eval losses and adapter bytes. The output is a
// PEFT adapter directory; the base is untouched; trainer merge gives the
// model that Open with the adapter gives.
func TestCLILoRAResumeBitExact(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 50, 1)
	common := []string{"--model", base, "--data", data, "--batch-size", "4", "--micro-batch", "2",
		"--seq-len", "24", "--epochs", "2", "--lr", "1e-2", "--quiet", "-j", "1",
		"--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1", "--lora-targets", "v_proj,q_proj,down_proj",
		"--eval-fraction", "0.2", "--eval-every", "5"} // 40 training examples: 10 steps per epoch

	straight := filepath.Join(dir, "straight")
	if code, _, stderr := runCLI(append(common, "--out", straight, "--metrics", straight+".jsonl", "--save-every", "20")...); code != 0 {
		t.Fatalf("straight run: %d %s", code, stderr)
	}
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
	if code, _, stderr := runCLI("--resume", split, "--data", data, "--metrics", split+".jsonl", "--quiet"); code != 0 {
		t.Fatalf("resume: %d %s", code, stderr)
	}
	a, ea := readMetricLines(t, straight+".jsonl")
	b, eb := readMetricLines(t, split+".jsonl")
	if len(a) != 20 || len(b) != 20 {
		t.Fatalf("%d and %d steps, want 20", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("step %d: loss %v straight, %v resumed", i+1, a[i], b[i])
		}
	}
	if len(ea) != 4 || len(eb) != 4 {
		t.Fatalf("eval lines %v and %v, want steps 5, 10, 15, 20", ea, eb)
	}
	for s, v := range ea {
		if eb[s] != v {
			t.Errorf("eval at step %d: %v straight, %v resumed", s, v, eb[s])
		}
	}
	if !(a[19] < a[0]) || !(ea[20] < ea[5]) {
		t.Errorf("loss did not fall: train %v → %v, eval %v → %v", a[0], a[19], ea[5], ea[20])
	}
	for _, f := range []string{llama.AdapterWeightsFile, llama.AdapterConfigFile, "checkpoint-20/optimizer.safetensors"} {
		x, err1 := os.ReadFile(filepath.Join(straight, f))
		y, err2 := os.ReadFile(filepath.Join(split, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%v %v", err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between the straight and the resumed run", f)
		}
	}
	// PEFT's layout
	var ac map[string]any
	cb, _ := os.ReadFile(filepath.Join(straight, llama.AdapterConfigFile))
	if err := json.Unmarshal(cb, &ac); err != nil {
		t.Fatal(err)
	}
	if ac["peft_type"] != "LORA" || ac["task_type"] != "CAUSAL_LM" || ac["r"] != 4.0 || ac["lora_alpha"] != 8.0 ||
		ac["bias"] != "none" || ac["base_model_name_or_path"] != base || ac["lora_dropout"] != 0.1 {
		t.Errorf("adapter_config.json: %v", ac)
	}
	st, err := safetensors.Open(filepath.Join(straight, llama.AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	names := st.Names()
	st.Close()
	if len(names) != 2*3*2 {
		t.Errorf("%d tensors, want 12: %v", len(names), names)
	}
	for _, want := range []string{"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("no %s in %v", want, names)
		}
	}
	// merge vs Open with the adapter; untargeted weights are the base's
	merged := filepath.Join(dir, "merged")
	if code, _, stderr := runCLI("merge", "--model", base, "--adapter", straight, "--out", merged, "--quiet"); code != 0 {
		t.Fatalf("merge: %d %s", code, stderr)
	}
	mb, _ := llama.Load(base)
	mm, err := llama.Load(merged)
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, p := range mm.Params() {
		d := testutil.MaxAbsErr(mm.ReadWeights(p), mb.ReadWeights(mb.Param(p.Name)))
		targeted := strings.Contains(p.Name, "q_proj") || strings.Contains(p.Name, "v_proj") || strings.Contains(p.Name, "down_proj")
		if targeted && d > 0 {
			changed++
		}
		if !targeted && d != 0 {
			t.Errorf("%s changed by the merge", p.Name)
		}
	}
	if changed != 6 {
		t.Errorf("%d targeted weights changed, want 6", changed)
	}
	if _, err := os.Stat(filepath.Join(merged, "tokenizer.model")); err != nil {
		t.Errorf("merged model has no tokenizer: %v", err)
	}
	toks := []int32{1, 5, 9, 12, 3, 7}
	var logits [2][]float32
	for i, opt := range []struct{ dir, ad string }{{merged, ""}, {base, straight}} {
		m, err := llama.Open(opt.dir, llama.OpenOptions{Adapter: opt.ad})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := m.NewKVCache(8)
		l, err := m.Feed(c, toks)
		if err != nil {
			t.Fatal(err)
		}
		logits[i] = append([]float32(nil), l...)
		m.Close()
	}
	if e := testutil.MaxRelErr(logits[1], logits[0]); !(e <= 1e-6) {
		t.Errorf("Open(base, adapter) vs merged: rel err %.3g", e)
	}
	// trainer eval with the adapter = trainer eval of the merged model
	var evl [2]float64
	for i, args := range [][]string{{"--model", base, "--adapter", straight}, {"--model", merged}} {
		code, out, stderr := runCLI(append([]string{"eval", "--data", data, "--quiet", "--seq-len", "24"}, args...)...)
		if code != 0 {
			t.Fatalf("eval %v: %d %s", args, code, stderr)
		}
		var r EvalResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		evl[i] = r.Loss
	}
	if e := testutil.RelErr(evl[0], evl[1], 0); !(e <= 1e-5) {
		t.Errorf("eval with the adapter %.8f, merged %.8f", evl[0], evl[1])
	}
	// the plot draws the eval series
	if code, _, stderr := runCLI("plot", "--metrics", straight+".jsonl", "-o", filepath.Join(dir, "p.png")); code != 0 {
		t.Errorf("plot: %d %s", code, stderr)
	}
}

func TestCLILoRAErrors(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fp := makeModel(t, base, testVocab)
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, fp, 10, 1)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--lora-targets", "q_proj,lm_head"}, 2, "lm_head"},
		{[]string{"--lora-r", "0"}, 2, "rank"},
		{[]string{"--lora", "--lora-dropout", "1"}, 2, "dropout"},
		{[]string{"--eval-every", "3"}, 2, "held-out set"},
		{[]string{"--eval-fraction", "0.5", "--eval-data", data}, 2, "give one"},
		{[]string{"--eval-fraction", "0.01"}, 0, ""},
	} {
		out := filepath.Join(t.TempDir(), "o")
		args := append([]string{"--model", base, "--data", data, "--out", out, "--max-steps", "1", "--quiet", "--seq-len", "16"}, tc.args...)
		code, _, e := runCLI(args...)
		if code != tc.code || !strings.Contains(e, tc.want) {
			t.Errorf("%v: exit %d %q, want %d %q", tc.args, code, e, tc.code, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"merge", "--model", base}, "required"},
		{[]string{"merge", "--model", base, "--adapter", base, "--out", filepath.Join(dir, "m")}, "not a PEFT adapter"},
	} {
		code, _, e := runCLI(tc.args...)
		if code == 0 || !strings.Contains(e, tc.want) {
			t.Errorf("%v: exit %d %q, want %q", tc.args, code, e, tc.want)
		}
	}
}

func TestSplitEval(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "tokens.bin")
	writeStream(t, data, testVocab, nil, 30, 4)
	d, err := OpenDataset(data)
	if err != nil {
		t.Fatal(err)
	}
	tr, ev, st, err := SplitEval(d, 0.1, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Examples) != 3 || len(tr.Examples) != 27 || st.HeldOut != 3 || tr.Hash != d.Hash {
		t.Fatalf("split %d/%d %+v", len(tr.Examples), len(ev.Examples), st)
	}
	if tr.Tokens+ev.Tokens != d.Tokens || tr.Targets+ev.Targets != d.Targets {
		t.Errorf("counts do not add up")
	}
	// every example lands on exactly one side, in stream order
	i, j := 0, 0
	for _, ex := range d.Examples {
		switch {
		case i < len(tr.Examples) && &tr.Examples[i].IDs[0] == &ex.IDs[0]:
			i++
		case j < len(ev.Examples) && &ev.Examples[j].IDs[0] == &ex.IDs[0]:
			j++
		default:
			t.Fatalf("example lost or reordered")
		}
	}
	_, _, st2, _ := SplitEval(d, 0.1, 42)
	_, _, st3, _ := SplitEval(d, 0.1, 43)
	if st2.SHA256 != st.SHA256 || st3.SHA256 == st.SHA256 {
		t.Errorf("split not determined by the seed")
	}
	if _, _, _, err := SplitEval(d, 0.999, 1); err == nil {
		t.Errorf("a split with no training example was accepted")
	}
}

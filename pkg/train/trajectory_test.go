package train

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// TestTrajectoryMatchesTorch trains the tiny LLaMA of
// testdata/trajectory.safetensors for 6 steps (warmup, cosine decay,
// clipping, weight decay, both loss reductions) and compares losses,
// gradient norms, learning rates and the final weights with PyTorch's
// (scripts/fixtures/train_trajectory.py, fp32).
func TestTrajectoryMatchesTorch(t *testing.T) {
	f, err := safetensors.Open("testdata/trajectory.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta := f.Metadata()
	cfg, err := llama.ParseConfig([]byte(meta["config"]))
	if err != nil {
		t.Fatal(err)
	}
	i32 := func(name string) []int32 {
		b, err := f.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]int32, len(b)/4)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	ids, mask, lens := i32("data.ids"), i32("data.mask"), i32("data.len")
	d := &Dataset{Name: "fixture", Header: tokstream.Header{VocabSize: cfg.VocabSize}, Hash: "fixture"}
	off := 0
	for _, n := range lens {
		ex := tokstream.Example{IDs: ids[off : off+int(n)]}
		for _, m := range mask[off : off+int(n)] {
			ex.Mask = append(ex.Mask, m != 0)
		}
		off += int(n)
		d.Examples = append(d.Examples, ex)
	}
	num := func(k string) float64 {
		x, err := strconv.ParseFloat(meta[k], 64)
		if err != nil {
			t.Fatalf("metadata %s: %v", k, err)
		}
		return x
	}
	for _, red := range []string{ReduceTokens, ReduceHF} {
		m := llama.New(cfg, 0)
		for _, p := range m.Params() {
			w, err := f.Float32(p.Name)
			if err != nil {
				t.Fatal(err)
			}
			m.WriteWeights(p, w)
		}
		c := DefaultConfig()
		c.Batch = BatchConfig{SeqLen: 64, Packing: red == ReduceTokens, BatchSize: int(num("batch_size")), MicroBatch: int(num("micro_batch"))}
		c.Epochs, c.LR, c.WeightDecay = int(num("epochs")), num("lr"), num("weight_decay")
		c.WarmupRatio, c.MaxGradNorm, c.LossReduction = num("warmup_ratio"), num("max_grad_norm"), red
		tr, err := New(c, m, d)
		if err != nil {
			t.Fatal(err)
		}
		var log []struct {
			Loss, GradNorm, LR float64
		}
		var raw []map[string]float64
		json.Unmarshal([]byte(meta["log."+red]), &raw)
		for _, r := range raw {
			log = append(log, struct{ Loss, GradNorm, LR float64 }{r["loss"], r["grad_norm"], r["lr"]})
		}
		if tr.TotalSteps != len(log) || len(log) < 3 {
			t.Fatalf("%s: %d steps, torch %d", red, tr.TotalSteps, len(log))
		}
		for s, want := range log {
			res, err := tr.TrainStep()
			if err != nil {
				t.Fatal(err)
			}
			if !relClose(res.Loss, want.Loss, 1e-5) || !relClose(res.GradNorm, want.GradNorm, 1e-4) || !relClose(res.LR, want.LR, 1e-12) {
				t.Errorf("%s step %d: loss %.7g |g| %.7g lr %.7g; torch %.7g %.7g %.7g", red, s+1,
					res.Loss, res.GradNorm, res.LR, want.Loss, want.GradNorm, want.LR)
			}
		}
		worst := 0.0
		for _, p := range m.Params() {
			w, err := f.Float32("final." + red + "." + p.Name)
			if err != nil {
				t.Fatal(err)
			}
			// NaN-safe: a NaN weight makes the error +Inf
			if e := testutil.MaxAbsErr(m.ReadWeights(p), w); !(e <= worst) {
				worst = e
			}
		}
		// Adam moves each weight by about lr per step whatever the gradient's
		// size, so fp32 noise in a tiny gradient can show up at ~lr×1e-3.
		if !(worst <= 1e-5) {
			t.Errorf("%s: final weights differ from torch by up to %g", red, worst)
		}
		t.Logf("%s: max |w - w_torch| after %d steps: %.2g", red, len(log), worst)
	}
}

package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func testConfig() Config {
	c := DefaultConfig()
	c.Batch = BatchConfig{SeqLen: 16, Packing: true, BatchSize: 8, MicroBatch: 2, Shuffle: true, Seed: 3}
	c.Epochs = 2
	c.LR = 1e-2
	c.WarmupRatio = 0.1
	return c
}

func copyModel(m *bigram) *bigram {
	c := newBigram(m.V, m.H, 0)
	for i, p := range m.params {
		copy(c.params[i].W, p.W)
	}
	return c
}

func TestLossReductions(t *testing.T) {
	d := synthData(10, 12, 1)
	for _, red := range []string{ReduceTokens, ReduceHF} {
		for _, packing := range []bool{true, false} {
			cfg := testConfig()
			cfg.Batch.BatchSize, cfg.Batch.MicroBatch, cfg.Batch.Packing = 10, 3, packing
			cfg.Batch.Shuffle = false
			cfg.LossReduction, cfg.MaxGradNorm, cfg.LR = red, 0, 0
			m := newBigram(12, 6, 5)
			ref := copyModel(m)
			tr, err := New(cfg, m, d)
			if err != nil {
				t.Fatal(err)
			}
			res, err := tr.TrainStep()
			if err != nil {
				t.Fatal(err)
			}
			// Reference: each micro-batch's examples evaluated one by one.
			mbs := cfg.Batch.MicroBatches(d.Examples, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
			var total float64
			var N int
			var means []float64
			rows := cfg.Batch.Rows(d.Examples, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
			for s := 0; s < len(rows); s += 3 {
				var ms float64
				var mn int
				for _, r := range rows[s:min(s+3, len(rows))] {
					for _, e := range r {
						b := BatchConfig{SeqLen: 16, MicroBatch: 1}.MicroBatches(d.Examples, []int{e})[0]
						sum, n, _ := ref.ForwardBackward(b, 0)
						ms += sum
						mn += n
					}
				}
				total += ms
				N += mn
				means = append(means, ms/float64(mn))
			}
			if len(means) != len(mbs) {
				t.Fatalf("%d reference micro-batches, trainer %d", len(means), len(mbs))
			}
			want := total / float64(N)
			if red == ReduceHF {
				want = 0
				for _, x := range means {
					want += x / float64(len(means))
				}
			}
			if !(math.Abs(res.Loss-want) <= 1e-9*want) {
				t.Errorf("%s packing=%v: loss %v, want %v", red, packing, res.Loss, want)
			}
			if res.Targets != N {
				t.Errorf("%s: %d targets, want %d", red, res.Targets, N)
			}
			// The gradient is that of the reported loss: check it against
			// the reference with the matching per-example scales.
			ref.ZeroGrad()
			for mi, s := 0, 0; s < len(rows); mi, s = mi+1, s+3 {
				for _, r := range rows[s:min(s+3, len(rows))] {
					for _, e := range r {
						b := BatchConfig{SeqLen: 16, MicroBatch: 1}.MicroBatches(d.Examples, []int{e})[0]
						scale := 1 / float64(N)
						if red == ReduceHF {
							scale = 1 / (float64(len(means)) * float64(CountTargets(mbs[mi])))
						}
						ref.ForwardBackward(b, float32(scale))
					}
				}
			}
			for i, p := range m.params {
				for j := range p.G {
					if !(math.Abs(float64(p.G[j]-ref.params[i].G[j])) <= 1e-6) {
						t.Fatalf("%s: grad %s[%d] = %v, reference %v", red, p.Name, j, p.G[j], ref.params[i].G[j])
					}
				}
			}
		}
	}
}

func run(t *testing.T, tr *Trainer, steps int) []float64 {
	t.Helper()
	var losses []float64
	for i := 0; i < steps; i++ {
		res, err := tr.TrainStep()
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, res.Loss)
	}
	return losses
}

func TestResumeIsBitExact(t *testing.T) {
	defer func(c int) { optChunk = c }(optChunk)
	optChunk = 7 // the moments are streamed in several chunks per tensor
	d := synthData(80, 16, 2)
	cfg := testConfig() // 80 examples / 8 = 10 steps per epoch, 2 epochs
	straight, err := New(cfg, newBigram(16, 8, 9), d)
	if err != nil {
		t.Fatal(err)
	}
	if straight.TotalSteps != 20 {
		t.Fatalf("total steps %d, want 20", straight.TotalSteps)
	}
	all := run(t, straight, 20)
	if !straight.Done() {
		t.Fatal("not done after 20 steps")
	}
	for _, at := range []int{7, 10} { // mid-epoch and at an epoch boundary
		dir := t.TempDir()
		first, _ := New(cfg, newBigram(16, 8, 9), d)
		head := run(t, first, at)
		ck := filepath.Join(dir, "checkpoint")
		if err := first.SaveDir(ck, "float32", true, head[len(head)-1]); err != nil {
			t.Fatal(err)
		}
		// a different init, so that only the checkpoint can make it equal
		m := newBigram(16, 8, 1234)
		if err := LoadWeights(m, ck); err != nil {
			t.Fatal(err)
		}
		second, _ := New(cfg, m, d)
		st, err := ReadState(ck)
		if err != nil {
			t.Fatal(err)
		}
		if err := second.Restore(ck, st); err != nil {
			t.Fatal(err)
		}
		tail := run(t, second, 20-at)
		got := append(head, tail...)
		for i := range all {
			if got[i] != all[i] {
				t.Fatalf("resume at %d: step %d loss %v, straight run %v", at, i+1, got[i], all[i])
			}
		}
		sm := straight.Model.(*bigram)
		for i, p := range m.params {
			for j := range p.W {
				if p.W[j] != sm.params[i].W[j] {
					t.Fatalf("resume at %d: %s[%d] = %v, straight %v", at, p.Name, j, p.W[j], sm.params[i].W[j])
				}
			}
		}
		if !second.Done() || second.Epoch != straight.Epoch {
			t.Errorf("resume at %d: done %v epoch %d", at, second.Done(), second.Epoch)
		}
	}
}

func TestResumeRejectsOtherSettings(t *testing.T) {
	d := synthData(16, 16, 2)
	cfg := testConfig()
	tr, _ := New(cfg, newBigram(16, 8, 9), d)
	run(t, tr, 1)
	ck := filepath.Join(t.TempDir(), "ck")
	if err := tr.SaveDir(ck, "float32", true, 0); err != nil {
		t.Fatal(err)
	}
	st, _ := ReadState(ck)
	cfg2 := cfg
	cfg2.LR = 1e-3
	tr2, _ := New(cfg2, newBigram(16, 8, 9), d)
	err := tr2.Restore(ck, st)
	if err == nil || !contains(err.Error(), "lr 0.01 in the checkpoint, 0.001 now") {
		t.Errorf("error %v", err)
	}
	tr3, _ := New(cfg, newBigram(16, 8, 9), synthData(16, 16, 3))
	tr3.Data.Hash = "other"
	if err := tr3.Restore(ck, st); err == nil || !contains(err.Error(), "other data") {
		t.Errorf("error %v", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestOverfitBigram(t *testing.T) {
	d := synthData(32, 16, 4)
	cfg := testConfig()
	cfg.Batch.BatchSize = 32
	cfg.Epochs = 150
	cfg.LR = 0.05
	cfg.Schedule = "constant"
	cfg.WarmupRatio = 0
	tr, err := New(cfg, newBigram(16, 16, 1), d)
	if err != nil {
		t.Fatal(err)
	}
	losses := run(t, tr, tr.TotalSteps)
	if first, last := losses[0], losses[len(losses)-1]; !(first > 2 && last < 0.02) {
		t.Errorf("loss %v → %v, want > 2 → < 0.02", first, last)
	}
}

func TestNaNStopsWithoutUpdate(t *testing.T) {
	d := synthData(16, 16, 2)
	cfg := testConfig()
	cfg.Batch.BatchSize, cfg.Batch.MicroBatch = 8, 100 // one micro-batch per step
	m := newBigram(16, 8, 9)
	m.nanAt = 3
	tr, _ := New(cfg, m, d)
	run(t, tr, 2)
	before := append([]float32(nil), m.params[0].W...)
	_, err := tr.TrainStep()
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 3 || nf.What != "loss" {
		t.Fatalf("error %v, want NaN loss at step 3", err)
	}
	if tr.Step != 2 {
		t.Errorf("step advanced to %d", tr.Step)
	}
	for j := range before {
		if m.params[0].W[j] != before[j] {
			t.Fatal("weights changed by the NaN step")
		}
	}
	// Run surfaces the same error and saves nothing further.
	saved := 0
	err = tr.Run(context.Background(), Hooks{ShouldSave: func(int) bool { return true }, Save: func() error { saved++; return nil }})
	if err != nil {
		t.Fatalf("after the NaN call, training should go on: %v", err)
	}
	if saved == 0 {
		t.Error("no save")
	}
}

func TestMaxStepsCyclesEpochs(t *testing.T) {
	d := synthData(8, 16, 2)
	cfg := testConfig()
	cfg.MaxSteps = 5
	tr, err := New(cfg, newBigram(16, 8, 9), d)
	if err != nil {
		t.Fatal(err)
	}
	if tr.TotalSteps != 5 {
		t.Fatalf("total %d", tr.TotalSteps)
	}
	run(t, tr, 5)
	if !tr.Done() || tr.Epoch != 5 {
		t.Errorf("done %v epoch %d (one batch per epoch: want 5)", tr.Done(), tr.Epoch)
	}
}

func TestSaveDirIsAtomicOnError(t *testing.T) {
	d := synthData(8, 16, 2)
	tr, _ := New(testConfig(), &failingSave{newBigram(16, 8, 9)}, d)
	out := t.TempDir()
	err := tr.SaveDir(filepath.Join(out, "checkpoint-1"), "float32", true, 0)
	if err == nil {
		t.Fatal("no error")
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Errorf("left behind: %v", ents[0].Name())
	}
}

type failingSave struct{ *bigram }

func (f *failingSave) Save(dir, dtype string) error { return errors.New("no space left on device") }

func TestRunInterrupt(t *testing.T) {
	d := synthData(40, 16, 2)
	tr, _ := New(testConfig(), newBigram(16, 8, 9), d)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupted := 0
	err := tr.Run(ctx, Hooks{
		OnStep: func(r StepResult) error {
			if r.Step == 3 {
				cancel()
			}
			return nil
		},
		OnInterrupt: func() error { interrupted++; return nil },
	})
	if !errors.Is(err, context.Canceled) || interrupted != 1 || tr.Step != 3 {
		t.Errorf("err %v, OnInterrupt called %d times, stopped at step %d (want 3)", err, interrupted, tr.Step)
	}
}

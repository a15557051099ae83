// Package train is the training loop of `trainer`: token-stream batches
// (packed or padded), loss reduction, AdamW with a warmup/cosine schedule,
// gradient accumulation and clipping, atomic checkpoints that resume
// bit-exactly, and JSONL metrics. The model is anything with the
// llama.Model training surface (see Model).
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// Model is what the loop needs from a model; *llama.Model implements it.
// Weights and gradients are backend arenas (each parameter at its Off);
// the loop's clipping and AdamW run on the model's backend.
type Model interface {
	Backend() backend.Backend
	Params() []*llama.Param
	Weights() backend.Buffer // weight arena
	Grads() backend.Buffer   // gradient arena, laid out alike
	ZeroGrad()
	// ForwardBackward adds scale × d(sum of cross-entropies)/dW to the
	// gradients and returns the summed loss and the number of targets.
	ForwardBackward(b *llama.Batch, scale float32) (lossSum float64, n int, err error)
	Save(dir string, dtype string) error
}

// Loss reductions.
const (
	ReduceTokens = "tokens" // mean over every target token of the global batch
	ReduceHF     = "hf"     // mean per micro-batch, averaged over the micro-batches (HF Trainer)
)

// Config is everything that determines the training trajectory. It is
// stored in every checkpoint; resuming requires the same values.
type Config struct {
	Batch         BatchConfig `json:"batch"`
	Epochs        int         `json:"epochs"`
	MaxSteps      int         `json:"max_steps,omitempty"` // > 0: train this many steps (cycling epochs), the schedule spans them
	LR            float64     `json:"lr"`
	Schedule      string      `json:"schedule"`
	WarmupRatio   float64     `json:"warmup_ratio"`
	WarmupSteps   int         `json:"warmup_steps"` // >= 0 overrides WarmupRatio; -1 = from the ratio
	WeightDecay   float64     `json:"weight_decay"`
	Beta1         float64     `json:"beta1"`
	Beta2         float64     `json:"beta2"`
	Eps           float64     `json:"eps"`
	MaxGradNorm   float64     `json:"max_grad_norm"` // <= 0: no clipping
	LossReduction string      `json:"loss_reduction"`
	// LoRA, when set, trains a PEFT LoRA adapter on the frozen base.
	LoRA *llama.LoRAConfig `json:"lora,omitempty"`
	// EvalFraction > 0 holds out that fraction of the stream's examples
	// (chosen with Batch.Seed) for evaluation; they are never trained on.
	EvalFraction float64 `json:"eval_fraction,omitempty"`
}

// DefaultConfig is Alpaca's recipe (train.py with the README's flags):
// lr 2e-5, 3 epochs, global batch 128 examples, warmup ratio 0.03, cosine,
// no weight decay, max sequence 512, clipping at 1.0 (HF's default).
func DefaultConfig() Config {
	return Config{
		Batch:         BatchConfig{SeqLen: 512, Packing: true, BatchSize: 128, MicroBatch: 4, Shuffle: true, Seed: 42},
		Epochs:        3,
		LR:            2e-5,
		Schedule:      "cosine",
		WarmupRatio:   0.03,
		WarmupSteps:   -1,
		Beta1:         0.9,
		Beta2:         0.999,
		Eps:           1e-8,
		MaxGradNorm:   1.0,
		LossReduction: ReduceTokens,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := c.Batch.Validate(); err != nil {
		return err
	}
	switch {
	case c.Epochs < 1 && c.MaxSteps < 1:
		return fmt.Errorf("need at least one epoch (or --max-steps)")
	case c.MaxSteps < 0:
		return fmt.Errorf("max steps %d is negative", c.MaxSteps)
	case !(c.LR >= 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("learning rate %v is not a non-negative number", c.LR)
	case !(c.WarmupRatio >= 0 && c.WarmupRatio <= 1): // NaN fails too
		return fmt.Errorf("warmup ratio %v is outside [0, 1]", c.WarmupRatio)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("weight decay %v is not a non-negative number", c.WeightDecay)
	case !(c.Beta1 >= 0 && c.Beta1 < 1 && c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("Adam betas (%v, %v) must be in [0, 1)", c.Beta1, c.Beta2)
	case !(c.Eps > 0) || math.IsInf(c.Eps, 0):
		return fmt.Errorf("Adam epsilon %v must be a positive number", c.Eps)
	case math.IsNaN(c.MaxGradNorm) || math.IsInf(c.MaxGradNorm, 0):
		return fmt.Errorf("max grad norm %v is not a number", c.MaxGradNorm)
	case c.LossReduction != ReduceTokens && c.LossReduction != ReduceHF:
		return fmt.Errorf("unknown loss reduction %q (want %s or %s)", c.LossReduction, ReduceTokens, ReduceHF)
	case !(c.EvalFraction >= 0 && c.EvalFraction < 1):
		return fmt.Errorf("eval fraction %v outside [0, 1)", c.EvalFraction)
	}
	if c.LoRA != nil {
		if err := c.LoRA.Validate(); err != nil {
			return err
		}
	}
	return Schedule{Kind: c.Schedule}.Validate()
}

// StepResult is what one optimizer step reports (a metrics line).
type StepResult struct {
	Step       int     `json:"step"`  // 1-based number of this optimizer step
	Epoch      float64 `json:"epoch"` // epochs completed, fractional
	Loss       float64 `json:"loss"`
	LR         float64 `json:"lr"`
	GradNorm   float64 `json:"grad_norm"` // before clipping
	Tokens     int     `json:"tokens"`    // non-padding tokens in the step
	Targets    int     `json:"targets"`   // tokens that counted in the loss
	TokensPerS float64 `json:"tokens_per_s"`
	Elapsed    float64 `json:"elapsed"` // seconds of training so far, over resumes
}

// NonFiniteError reports a NaN or infinite loss or gradient.
type NonFiniteError struct {
	Step int
	What string // "loss" or "gradient norm"
	Val  float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("step %d: %s is %v", e.Step, e.What, e.Val)
}

// Trainer holds the training state.
type Trainer struct {
	Cfg   Config
	Model Model
	Data  *Dataset
	Opt   *AdamW
	Sched Schedule

	Source string            // the model directory training started from (recorded in checkpoints)
	Files  map[string][]byte // extra files (tokenizer) written into every saved directory
	// OnMicro, when set, is called after each micro-batch of a step
	// (progress for big models, whose micro-batches take long).
	OnMicro func(done, total int)
	// Threads is the CPU thread count of the model's backend (recorded:
	// the CPU results depend on how the work is split).
	Threads int
	// Saving is recorded in checkpoints, so that a resumed run keeps
	// writing them.
	Saving Saving
	// LoRA is the adapter being trained (nil: full fine-tuning); its
	// dropout counter is checkpointed.
	LoRA *llama.LoRA
	// Eval describes the held-out set (recorded in checkpoints).
	Eval *EvalState

	Step       int     // optimizer steps done
	Epoch      int     // data position: epoch of the next step (0-based)
	BatchIdx   int     // data position: global batch of the next step within its epoch
	Elapsed    float64 // training seconds so far (over resumes)
	TokensSeen int64
	TotalSteps int

	be      backend.Backend
	params  []*llama.Param
	weights backend.Buffer
	grads   backend.Buffer
	epochOf int     // epoch whose batches are cached
	batches [][]int // cached global batches of epochOf
}

// New sets up a trainer for a fresh run.
func New(cfg Config, m Model, d *Dataset) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Trainer{Cfg: cfg, Model: m, Data: d, epochOf: -1}
	t.params, t.be = m.Params(), m.Backend()
	t.weights, t.grads = m.Weights(), m.Grads()
	if t.weights.IsNil() || t.grads.IsNil() || t.weights.Len() != t.grads.Len() {
		return nil, errors.New("the model has no weight and gradient arenas to train")
	}
	var err error
	if t.Opt, err = NewAdamW(t.be, t.params, t.weights.Len(), cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay); err != nil {
		return nil, err
	}
	t.TotalSteps = t.countSteps()
	if t.TotalSteps == 0 {
		return nil, errors.New("nothing to train: no optimizer step")
	}
	warm := cfg.WarmupSteps
	if warm < 0 {
		warm = WarmupSteps(t.TotalSteps, cfg.WarmupRatio)
	}
	t.Sched = Schedule{Kind: cfg.Schedule, LR: cfg.LR, Warmup: warm, Total: t.TotalSteps}
	return t, nil
}

func (t *Trainer) countSteps() int {
	if t.Cfg.MaxSteps > 0 {
		return t.Cfg.MaxSteps
	}
	n := 0
	for e := 0; e < t.Cfg.Epochs; e++ {
		n += len(t.epochBatches(e))
	}
	return n
}

func (t *Trainer) epochBatches(e int) [][]int {
	if e != t.epochOf {
		order := t.Cfg.Batch.Order(len(t.Data.Examples), e)
		t.batches = t.Cfg.Batch.GlobalBatches(t.Data.Examples, order)
		t.epochOf = e
	}
	return t.batches
}

// Done reports whether all steps have been taken.
func (t *Trainer) Done() bool { return t.Step >= t.TotalSteps }

// TrainStep runs one optimizer step: forward/backward over the micro-batches
// of the next global batch, clipping, AdamW. On a NaN or infinite loss or
// gradient it returns a *NonFiniteError and leaves the weights untouched.
func (t *Trainer) TrainStep() (StepResult, error) {
	start := time.Now()
	bs := t.epochBatches(t.Epoch)
	idx := bs[t.BatchIdx]
	mbs := t.Cfg.Batch.MicroBatches(t.Data.Examples, idx)
	res := StepResult{Step: t.Step + 1}
	for _, b := range mbs {
		res.Targets += CountTargets(b)
		res.Tokens += CountTokens(b)
	}
	t.Model.ZeroGrad()
	var lossSum, hfLoss float64
	k := float64(len(mbs))
	for mi, b := range mbs {
		if mi > 0 && t.OnMicro != nil {
			t.OnMicro(mi, len(mbs))
		}
		want := CountTargets(b)
		if want == 0 {
			continue // nothing to learn; HF would produce NaN here
		}
		var scale float32
		if t.Cfg.LossReduction == ReduceHF {
			scale = float32(1 / (k * float64(want)))
		} else {
			scale = float32(1 / float64(res.Targets))
		}
		s, n, err := t.Model.ForwardBackward(b, scale)
		if err != nil {
			return res, fmt.Errorf("step %d: %w", res.Step, err)
		}
		if n != want {
			return res, fmt.Errorf("step %d: the model counted %d targets in a micro-batch, the trainer %d", res.Step, n, want)
		}
		lossSum += s
		hfLoss += s / float64(n) / k
	}
	if res.Targets > 0 {
		res.Loss = lossSum / float64(res.Targets)
		if t.Cfg.LossReduction == ReduceHF {
			res.Loss = hfLoss
		}
	}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		return res, &NonFiniteError{Step: res.Step, What: "loss", Val: res.Loss}
	}
	res.GradNorm = ClipGrads(t.be, t.grads, t.Opt.Spans, t.Cfg.MaxGradNorm)
	if math.IsNaN(res.GradNorm) || math.IsInf(res.GradNorm, 0) {
		return res, &NonFiniteError{Step: res.Step, What: "gradient norm", Val: res.GradNorm}
	}
	res.LR = t.Sched.At(t.Step)
	t.Opt.Update(t.weights, t.grads, res.LR)

	t.Step++
	t.TokensSeen += int64(res.Tokens)
	t.BatchIdx++
	res.Epoch = float64(t.Epoch) + float64(t.BatchIdx)/float64(len(bs))
	if t.BatchIdx >= len(bs) {
		t.Epoch++
		t.BatchIdx = 0
	}
	dt := time.Since(start).Seconds()
	t.Elapsed += dt
	res.Elapsed = t.Elapsed
	if dt > 0 {
		res.TokensPerS = float64(res.Tokens) / dt
	}
	return res, nil
}

// Hooks are called by Run.
type Hooks struct {
	OnStep      func(StepResult) error // after each step (metrics, progress)
	ShouldSave  func(step int) bool    // save a checkpoint after this step
	Save        func() error           // write a checkpoint of the current state
	OnInterrupt func() error           // ctx cancelled between steps
}

// Run trains until the end, calling the hooks. It stops between steps when
// ctx is cancelled (after OnInterrupt) and returns ctx's error.
func (t *Trainer) Run(ctx context.Context, h Hooks) error {
	for !t.Done() {
		if ctx.Err() != nil {
			if h.OnInterrupt != nil {
				if err := h.OnInterrupt(); err != nil {
					return err
				}
			}
			return ctx.Err()
		}
		res, err := t.TrainStep()
		if err != nil {
			return err
		}
		if h.OnStep != nil {
			if err := h.OnStep(res); err != nil {
				return err
			}
		}
		if h.ShouldSave != nil && h.Save != nil && !t.Done() && h.ShouldSave(t.Step) {
			if err := h.Save(); err != nil {
				return err
			}
		}
	}
	return nil
}

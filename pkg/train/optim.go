package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// AdamW is torch.optim.AdamW (amsgrad off, maximize off): decoupled weight
// decay, then Adam with bias correction. The state is two fp32 backend
// arenas laid out like the model's weight arena (each parameter at its
// Off), and the update is one backend op over the arenas
// (backend.Backend.AdamW, torch 1.13's single-tensor arithmetic).
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	Step                           int64          // number of updates applied so far
	ExpAvg, ExpAvgSq               backend.Buffer // first and second moments (arenas)
	Spans                          []backend.Span // one per parameter; Decay: weight decay applies

	be backend.Backend
}

// NewAdamW makes the optimizer state for the parameters (names, offsets and
// sizes in arenas of arenaLen elements) on be. Weight decay is applied to
// every parameter except norms and biases, as the Hugging Face Trainer does
// (names ending in "norm.weight" or "bias").
func NewAdamW(be backend.Backend, params []*llama.Param, arenaLen int, beta1, beta2, eps, wd float64) (*AdamW, error) {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: wd, be: be}
	for _, p := range params {
		if p.Off < 0 || p.Off+p.N > arenaLen {
			return nil, fmt.Errorf("parameter %s [%d, %d) outside the arena of %d", p.Name, p.Off, p.Off+p.N, arenaLen)
		}
		o.Spans = append(o.Spans, p.Span(DecayApplies(p.Name)))
	}
	var err error
	if o.ExpAvg, err = be.Alloc(backend.F32, arenaLen); err != nil {
		return nil, fmt.Errorf("allocating the optimizer state: %w", err)
	}
	if o.ExpAvgSq, err = be.Alloc(backend.F32, arenaLen); err != nil {
		be.Free(o.ExpAvg)
		return nil, fmt.Errorf("allocating the optimizer state: %w", err)
	}
	return o, nil
}

// DecayApplies reports whether weight decay applies to the named parameter.
func DecayApplies(name string) bool {
	return !(strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, "bias"))
}

// Update applies one AdamW step with learning rate lr to the weight arena
// w using the gradient arena g. The arithmetic follows torch 1.13's
// single-tensor implementation in fp32:
//
//	p *= 1 - lr*wd
//	m = m*β1 + g*(1-β1);  v = v*β2 + (1-β2)*g*g
//	p -= lr/(1-β1^t) * m / (sqrt(v)/sqrt(1-β2^t) + ε)
func (o *AdamW) Update(w, g backend.Buffer, lr float64) {
	o.Step++
	o.be.AdamW(w, g, o.ExpAvg, o.ExpAvgSq, o.Spans, backend.AdamW{
		LR: lr, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, Step: o.Step})
}

// GradNorm is the global L2 norm of the gradient arena over the spans
// (each parameter summed in float64, then the parameters in order).
func GradNorm(be backend.Backend, g backend.Buffer, spans []backend.Span) float64 {
	return math.Sqrt(be.SumSquares(g, spans))
}

// ClipGrads scales the gradients so that their global norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_ does (coefficient
// maxNorm/(norm+1e-6), only when below 1). It returns the norm before
// clipping. maxNorm <= 0 disables clipping.
func ClipGrads(be backend.Backend, g backend.Buffer, spans []backend.Span, maxNorm float64) float64 {
	norm := GradNorm(be, g, spans)
	if maxNorm <= 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	be.Scale(g, float32(coef))
	return norm
}

// Schedule is the learning rate as a function of the optimizer step.
type Schedule struct {
	Kind   string // "cosine" (default), "linear" or "constant"
	LR     float64
	Warmup int // warmup steps
	Total  int // total optimizer steps
}

// Schedules lists the accepted Schedule kinds.
var Schedules = []string{"cosine", "linear", "constant"}

// WarmupSteps is Hugging Face's ceil(total × ratio).
func WarmupSteps(total int, ratio float64) int {
	return int(math.Ceil(float64(total) * ratio))
}

// At returns the learning rate used by the update with 0-based index step.
// Like the Hugging Face schedulers (get_cosine_schedule_with_warmup and
// friends, stepped after each optimizer step), the first update uses the
// factor for step 0, which is 0 when there is a warmup.
func (s Schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.LR * float64(step) / float64(max(1, s.Warmup))
	}
	switch s.Kind {
	case "constant":
		return s.LR
	case "linear":
		return s.LR * math.Max(0, float64(s.Total-step)/float64(max(1, s.Total-s.Warmup)))
	default:
		progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
		return s.LR * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
}

// Validate checks the schedule's kind.
func (s Schedule) Validate() error {
	for _, k := range Schedules {
		if s.Kind == k {
			return nil
		}
	}
	return fmt.Errorf("unknown learning-rate schedule %q (want %s)", s.Kind, strings.Join(Schedules, ", "))
}

package train

import (
	"fmt"
	"math"
	"strings"
)

// AdamW is torch.optim.AdamW (amsgrad off, maximize off): decoupled weight
// decay, then Adam with bias correction. State is fp32, one pair of moment
// buffers per parameter, in the order the parameters were given.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	Step                           int64       // number of updates applied so far
	ExpAvg, ExpAvgSq               [][]float32 // first and second moments per parameter
	Decay                          []bool      // whether weight decay applies to parameter i
}

// NewAdamW makes the optimizer state for parameters of the given sizes.
// Weight decay is applied to every parameter except norms and biases, as the
// Hugging Face Trainer does (names ending in "norm.weight" or "bias").
func NewAdamW(names []string, sizes []int, beta1, beta2, eps, wd float64) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: wd}
	for i, n := range sizes {
		o.ExpAvg = append(o.ExpAvg, make([]float32, n))
		o.ExpAvgSq = append(o.ExpAvgSq, make([]float32, n))
		o.Decay = append(o.Decay, DecayApplies(names[i]))
	}
	return o
}

// DecayApplies reports whether weight decay applies to the named parameter.
func DecayApplies(name string) bool {
	return !(strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, "bias"))
}

// Update applies one AdamW step with learning rate lr to the weights w
// using the gradients g (same order and sizes as at construction). The
// arithmetic follows torch 1.13's single-tensor implementation in fp32:
//
//	p *= 1 - lr*wd
//	m = m*β1 + g*(1-β1);  v = v*β2 + (1-β2)*g*g
//	p -= lr/(1-β1^t) * m / (sqrt(v)/sqrt(1-β2^t) + ε)
func (o *AdamW) Update(w, g [][]float32, lr float64) {
	o.Step++
	t := float64(o.Step)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2 := 1 - math.Pow(o.Beta2, t)
	stepSize := float32(lr / bc1)
	bc2Sqrt := float32(math.Sqrt(bc2))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	omb1, omb2 := float32(1-o.Beta1), float32(1-o.Beta2)
	eps := float32(o.Eps)
	decay := float32(1 - lr*o.WeightDecay)
	parallelFor(len(w), func(i int) {
		p, gr, m, v := w[i], g[i], o.ExpAvg[i], o.ExpAvgSq[i]
		applyDecay := o.WeightDecay != 0 && o.Decay[i]
		for j := range p {
			if applyDecay {
				p[j] *= decay
			}
			gj := gr[j]
			m[j] = m[j]*b1 + gj*omb1
			v[j] = v[j]*b2 + omb2*(gj*gj)
			denom := float32(math.Sqrt(float64(v[j])))/bc2Sqrt + eps
			p[j] += -stepSize * (m[j] / denom)
		}
	})
}

// GradNorm is the global L2 norm of all gradients (accumulated in float64).
func GradNorm(g [][]float32) float64 {
	sums := make([]float64, len(g))
	parallelFor(len(g), func(i int) {
		s := 0.0
		for _, x := range g[i] {
			s += float64(x) * float64(x)
		}
		sums[i] = s
	})
	t := 0.0
	for _, s := range sums {
		t += s
	}
	return math.Sqrt(t)
}

// ClipGrads scales the gradients so that their global norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_ does (coefficient
// maxNorm/(norm+1e-6), only when below 1). It returns the norm before
// clipping. maxNorm <= 0 disables clipping.
func ClipGrads(g [][]float32, maxNorm float64) float64 {
	norm := GradNorm(g)
	if maxNorm <= 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c := float32(coef)
	parallelFor(len(g), func(i int) {
		for j := range g[i] {
			g[i][j] *= c
		}
	})
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

package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SampleParams choose the next token from the logits.
type SampleParams struct {
	Temperature       float64 // 0: greedy (argmax, first index on ties)
	TopP              float64 // nucleus: keep the smallest set of tokens with probability >= TopP (1: off)
	TopK              int     // keep the TopK most likely tokens (0: off)
	RepetitionPenalty float64 // CTRL/Hugging Face penalty on tokens already seen (1: off)
	Seed              uint64  // the request's own random stream
}

// DefaultSampleParams: greedy, no penalty.
func DefaultSampleParams() SampleParams {
	return SampleParams{Temperature: 0, TopP: 1, TopK: 0, RepetitionPenalty: 1}
}

// Check validates the parameters.
func (p SampleParams) Check() error {
	switch {
	case !(p.Temperature >= 0) || p.Temperature > 100:
		return fmt.Errorf("temperature %v outside [0, 100]", p.Temperature)
	case !(p.TopP > 0) || p.TopP > 1:
		return fmt.Errorf("top_p %v outside (0, 1]", p.TopP)
	case p.TopK < 0:
		return fmt.Errorf("top_k %d is negative", p.TopK)
	case !(p.RepetitionPenalty > 0) || p.RepetitionPenalty > 100:
		return fmt.Errorf("repetition penalty %v outside (0, 100]", p.RepetitionPenalty)
	}
	return nil
}

// Sampler draws tokens for one sequence; its random stream depends only on
// its own seed, so a request's output does not depend on others decoded
// beside it.
type Sampler struct {
	p     SampleParams
	rng   *rand.Rand
	seen  map[int32]bool
	idx   []int32
	probs []float64
}

// NewSampler makes a sampler; history (the prompt) counts as seen for the
// repetition penalty.
func NewSampler(p SampleParams, history []int32) *Sampler {
	s := &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, 0x5eed5eed5eed5eed))}
	if p.RepetitionPenalty != 1 {
		s.seen = map[int32]bool{}
		for _, t := range history {
			s.seen[t] = true
		}
	}
	return s
}

// Sample picks the next token from logits (which it may modify) and
// records it as seen.
func (s *Sampler) Sample(logits []float32) int32 {
	if s.seen != nil {
		pen := float32(s.p.RepetitionPenalty)
		for t := range s.seen {
			if int(t) < len(logits) {
				if logits[t] > 0 {
					logits[t] /= pen
				} else {
					logits[t] *= pen
				}
			}
		}
	}
	var tok int32
	if s.p.Temperature == 0 || s.p.TopK == 1 {
		tok = Argmax(logits)
	} else {
		tok = s.draw(logits)
	}
	if s.seen != nil {
		s.seen[tok] = true
	}
	return tok
}

// Argmax is the first index of the largest value (NaN never wins).
func Argmax(x []float32) int32 {
	best := 0
	for i := 1; i < len(x); i++ {
		if x[i] > x[best] || (x[best] != x[best] && x[i] == x[i]) {
			best = i
		}
	}
	return int32(best)
}

func (s *Sampler) draw(logits []float32) int32 {
	invT := 1 / s.p.Temperature
	V := len(logits)
	s.idx = s.idx[:0]
	for i := 0; i < V; i++ {
		s.idx = append(s.idx, int32(i))
	}
	filtered := s.p.TopK > 0 || s.p.TopP < 1
	if filtered {
		slices.SortStableFunc(s.idx, func(a, b int32) int {
			la, lb := logits[a], logits[b]
			switch {
			case la > lb:
				return -1
			case la < lb:
				return 1
			}
			return 0
		})
		if s.p.TopK > 0 && s.p.TopK < len(s.idx) {
			s.idx = s.idx[:s.p.TopK]
		}
	}
	mx := math.Inf(-1)
	for _, i := range s.idx {
		mx = max(mx, float64(logits[i]))
	}
	s.probs = s.probs[:0]
	sum := 0.0
	for _, i := range s.idx {
		e := math.Exp((float64(logits[i]) - mx) * invT)
		if e != e {
			e = 0
		}
		s.probs = append(s.probs, e)
		sum += e
	}
	if filtered && s.p.TopP < 1 {
		cum := 0.0
		n := len(s.probs)
		for k, p := range s.probs {
			cum += p / sum
			if cum >= s.p.TopP {
				n = k + 1
				break
			}
		}
		s.idx, s.probs = s.idx[:n], s.probs[:n]
		sum = 0
		for _, p := range s.probs {
			sum += p
		}
	}
	if !(sum > 0) {
		return Argmax(logits)
	}
	r := s.rng.Float64() * sum
	for k, p := range s.probs {
		r -= p
		if r < 0 {
			return s.idx[k]
		}
	}
	return s.idx[len(s.idx)-1]
}

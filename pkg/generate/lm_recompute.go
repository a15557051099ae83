//go:build !kvcache

package generate

import (
	"fmt"

	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// recomputeLM is the interim LM over llama.Model.Forward: weights in fp32
// in memory, and every Feed recomputes the whole sequence (no KV cache).
// It is replaced by lm_kv.go once pkg/llama has the inference API.
type recomputeLM struct {
	m *llama.Model
	V int
}

type recomputeSeq struct {
	toks []int32
	cap  int
}

func (s *recomputeSeq) Len() int { return len(s.toks) }
func (s *recomputeSeq) Cap() int { return s.cap }
func (s *recomputeSeq) Truncate(n int) {
	if n >= 0 && n < len(s.toks) {
		s.toks = s.toks[:n]
	}
}

// OpenLM loads the weights of dir for inference.
func OpenLM(dir string, opt Options) (LM, error) {
	m, err := llama.LoadWeights(dir)
	if err != nil {
		return nil, err
	}
	m.SetBackend(cpu.New(opt.Threads))
	return &recomputeLM{m: m, V: m.Config.VocabSize}, nil
}

func (l *recomputeLM) VocabSize() int { return l.V }

func (l *recomputeLM) NewSeq(maxLen int) (Seq, error) {
	if maxLen <= 0 || maxLen > l.m.Config.MaxPositionEmbeddings {
		return nil, fmt.Errorf("sequence length %d outside 1..%d", maxLen, l.m.Config.MaxPositionEmbeddings)
	}
	return &recomputeSeq{cap: maxLen}, nil
}

func (l *recomputeLM) Feed(s Seq, toks []int32) ([]float32, error) {
	rs := s.(*recomputeSeq)
	if len(toks) == 0 {
		return nil, fmt.Errorf("feed: no tokens")
	}
	if len(rs.toks)+len(toks) > rs.cap {
		return nil, fmt.Errorf("feed: %d positions would overflow the sequence's %d", len(rs.toks)+len(toks), rs.cap)
	}
	for _, t := range toks {
		if t < 0 || int(t) >= l.V {
			return nil, fmt.Errorf("feed: token id %d outside the vocabulary [0,%d)", t, l.V)
		}
	}
	rs.toks = append(rs.toks, toks...)
	T := len(rs.toks)
	b := &llama.Batch{B: 1, T: T, Tokens: rs.toks, Pos: make([]int32, T), Seg: make([]int32, T)}
	for i := range b.Pos {
		b.Pos[i] = int32(i)
	}
	logits := l.m.Forward(b)
	return logits[(T-1)*l.V:], nil
}

func (l *recomputeLM) FeedBatch(ss []Seq, toks []int32) ([]float32, error) {
	if len(ss) != len(toks) {
		return nil, fmt.Errorf("feed batch: %d sequences, %d tokens", len(ss), len(toks))
	}
	out := make([]float32, len(ss)*l.V)
	for i, s := range ss {
		lg, err := l.Feed(s, toks[i:i+1])
		if err != nil {
			return nil, err
		}
		copy(out[i*l.V:], lg)
	}
	return out, nil
}

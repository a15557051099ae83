package generate

import (
	"fmt"

	_ "github.com/alpaca-go/alpaca/pkg/backend/cpu" // registers the "cpu" backend
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// kvLM is LM over pkg/llama's inference API (llama.Open, KV caches,
// Feed/FeedBatch); *llama.KVCache is the Seq.
type kvLM struct{ m *llama.Model }

// OpenLM opens dir for inference: weights stay in their stored type
// (memory-mapped) unless opt.DType converts them.
func OpenLM(dir string, opt Options) (LM, error) {
	m, err := llama.Open(dir, llama.OpenOptions{Threads: opt.Threads, DType: opt.DType, Adapter: opt.Adapter})
	if err != nil {
		return nil, err
	}
	return kvLM{m}, nil
}

func (l kvLM) VocabSize() int { return l.m.Config.VocabSize }

func (l kvLM) NewSeq(maxLen int) (Seq, error) { return l.m.NewKVCache(maxLen) }

func (l kvLM) Feed(s Seq, toks []int32) ([]float32, error) { return l.m.Feed(s.(*llama.KVCache), toks) }

func (l kvLM) FeedBatch(ss []Seq, toks []int32) ([]float32, error) {
	cs := make([]*llama.KVCache, len(ss))
	for i, s := range ss {
		c, ok := s.(*llama.KVCache)
		if !ok {
			return nil, fmt.Errorf("feed batch: sequence %d is not a KV cache", i)
		}
		cs[i] = c
	}
	return l.m.FeedBatch(cs, toks)
}

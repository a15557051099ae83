package train

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sort"

	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// BatchConfig says how examples become model batches.
type BatchConfig struct {
	SeqLen      int   `json:"seq_len"`      // longest row; longer examples are truncated to it
	Packing     bool  `json:"packing"`      // pack several examples into one row (attention kept inside each example)
	BatchSize   int   `json:"batch_size"`   // examples per optimizer step (global batch); used when BatchTokens is 0
	BatchTokens int   `json:"batch_tokens"` // tokens per optimizer step instead: examples are added while they fit
	MicroBatch  int   `json:"micro_batch"`  // rows per forward/backward pass
	Shuffle     bool  `json:"shuffle"`      // shuffle the examples every epoch
	Seed        int64 `json:"seed"`
}

// Validate checks the configuration.
func (c BatchConfig) Validate() error {
	switch {
	case c.SeqLen < 2:
		return fmt.Errorf("sequence length %d is too short (need at least 2)", c.SeqLen)
	case c.MicroBatch < 1:
		return fmt.Errorf("micro-batch %d must be at least 1", c.MicroBatch)
	case c.BatchTokens < 0, c.BatchSize < 0, c.BatchTokens == 0 && c.BatchSize == 0:
		return fmt.Errorf("the global batch must be a positive number of examples or tokens")
	}
	return nil
}

// Order is the order in which epoch visits the n examples: a Fisher–Yates
// shuffle driven by PCG(seed, epoch), so any epoch's order can be rebuilt
// from the seed alone (which is what resuming does).
func (c BatchConfig) Order(n, epoch int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if !c.Shuffle {
		return order
	}
	r := rand.NewPCG(uint64(c.Seed), uint64(epoch))
	for i := n - 1; i > 0; i-- {
		j := int(boundedRand(r, uint64(i+1)))
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// boundedRand is a uniform integer in [0, n) (Lemire's method).
func boundedRand(r *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// length is the number of tokens of an example that are used.
func (c BatchConfig) length(ex *tokstream.Example) int { return min(len(ex.IDs), c.SeqLen) }

// GlobalBatches splits an epoch's order into the global batches of the
// optimizer steps. The last batch of an epoch may be smaller.
func (c BatchConfig) GlobalBatches(exs []tokstream.Example, order []int) [][]int {
	var out [][]int
	if c.BatchTokens == 0 {
		for i := 0; i < len(order); i += c.BatchSize {
			out = append(out, order[i:min(i+c.BatchSize, len(order))])
		}
		return out
	}
	start, tokens := 0, 0
	for i, idx := range order {
		n := c.length(&exs[idx])
		if i > start && tokens+n > c.BatchTokens {
			out = append(out, order[start:i])
			start, tokens = i, 0
		}
		tokens += n
	}
	if start < len(order) {
		out = append(out, order[start:])
	}
	return out
}

// Row is one row of a batch: the examples in it, in order.
type Row []int

// Rows lays the examples of a global batch out in rows: one example per row
// without packing; with packing, first-fit decreasing by length into rows
// of at most SeqLen tokens.
func (c BatchConfig) Rows(exs []tokstream.Example, idx []int) []Row {
	if !c.Packing {
		rows := make([]Row, len(idx))
		for i, e := range idx {
			rows[i] = Row{e}
		}
		return rows
	}
	sorted := append([]int(nil), idx...)
	sort.SliceStable(sorted, func(a, b int) bool {
		return c.length(&exs[sorted[a]]) > c.length(&exs[sorted[b]])
	})
	var rows []Row
	var fill []int
	for _, e := range sorted {
		n := c.length(&exs[e])
		placed := false
		for r := range rows {
			if fill[r]+n <= c.SeqLen {
				rows[r] = append(rows[r], e)
				fill[r] += n
				placed = true
				break
			}
		}
		if !placed {
			rows = append(rows, Row{e})
			fill = append(fill, n)
		}
	}
	return rows
}

// MicroBatches turns a global batch into model batches of at most
// MicroBatch rows, each as wide as its longest row. Inside a row every
// example gets its own segment id (0, 1, ...) and positions restarting at 0;
// padding has segment -1. Target[i] is the example's next token when that
// token is a training target (its mask bit is set), else -1; the last token
// of an example has no target.
func (c BatchConfig) MicroBatches(exs []tokstream.Example, idx []int) []*llama.Batch {
	rows := c.Rows(exs, idx)
	var out []*llama.Batch
	for s := 0; s < len(rows); s += c.MicroBatch {
		rs := rows[s:min(s+c.MicroBatch, len(rows))]
		T := 0
		for _, r := range rs {
			n := 0
			for _, e := range r {
				n += c.length(&exs[e])
			}
			T = max(T, n)
		}
		T = max(T, 1)
		b := &llama.Batch{B: len(rs), T: T,
			Tokens: make([]int32, len(rs)*T), Pos: make([]int32, len(rs)*T),
			Seg: make([]int32, len(rs)*T), Target: make([]int32, len(rs)*T)}
		for i := range b.Seg {
			b.Seg[i], b.Target[i] = -1, -1
		}
		for ri, r := range rs {
			o := ri * T
			for seg, e := range r {
				ex := &exs[e]
				n := c.length(ex)
				for i := 0; i < n; i++ {
					b.Tokens[o+i] = ex.IDs[i]
					b.Pos[o+i] = int32(i)
					b.Seg[o+i] = int32(seg)
					if i+1 < n && ex.Mask[i+1] {
						b.Target[o+i] = ex.IDs[i+1]
					}
				}
				o += n
			}
		}
		out = append(out, b)
	}
	return out
}

// CountTargets is the number of positions with a target in b.
func CountTargets(b *llama.Batch) int {
	n := 0
	for _, t := range b.Target {
		if t >= 0 {
			n++
		}
	}
	return n
}

// CountTokens is the number of non-padding positions in b.
func CountTokens(b *llama.Batch) int {
	n := 0
	for _, s := range b.Seg {
		if s >= 0 {
			n++
		}
	}
	return n
}

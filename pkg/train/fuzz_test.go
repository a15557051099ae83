package train

import (
	"bytes"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// FuzzMicroBatches checks the batching invariants on arbitrary example
// lengths and masks: every example lands in exactly one row, rows fit
// SeqLen, every target of the (truncated) examples is counted exactly once
// and points at the right next token.
func FuzzMicroBatches(f *testing.F) {
	f.Add([]byte{5, 3, 9, 1, 7, 2}, uint8(8), uint8(2), true)
	f.Add([]byte{1, 1, 1}, uint8(2), uint8(1), false)
	f.Fuzz(func(t *testing.T, spec []byte, seqLen, micro uint8, packing bool) {
		if len(spec) == 0 || len(spec) > 64 || seqLen < 2 || micro == 0 {
			return
		}
		var exs []tokstream.Example
		want := 0
		c := BatchConfig{SeqLen: int(seqLen), Packing: packing, BatchSize: len(spec), MicroBatch: int(micro)}
		for i, b := range spec {
			n := int(b%40) + 1
			ex := tokstream.Example{}
			for j := 0; j < n; j++ {
				ex.IDs = append(ex.IDs, int32(i*1000+j))
				ex.Mask = append(ex.Mask, (int(b)+j)%3 != 0)
			}
			for j := 1; j < min(n, c.SeqLen); j++ {
				if ex.Mask[j] {
					want++
				}
			}
			exs = append(exs, ex)
		}
		idx := make([]int, len(exs))
		for i := range idx {
			idx[i] = i
		}
		seen := map[int]int{}
		for _, r := range c.Rows(exs, idx) {
			fill := 0
			for _, e := range r {
				seen[e]++
				fill += min(len(exs[e].IDs), c.SeqLen)
			}
			if fill > c.SeqLen {
				t.Fatalf("row of %d tokens > %d", fill, c.SeqLen)
			}
		}
		for i := range exs {
			if seen[i] != 1 {
				t.Fatalf("example %d in %d rows", i, seen[i])
			}
		}
		got := 0
		for _, b := range c.MicroBatches(exs, idx) {
			if b.B > c.MicroBatch || b.T > c.SeqLen || len(b.Target) != b.B*b.T {
				t.Fatalf("batch %d×%d", b.B, b.T)
			}
			for i, tg := range b.Target {
				if tg < 0 {
					continue
				}
				got++
				// ids are example*1000 + position: the target is the next id
				// of the same example.
				if tg != b.Tokens[i]+1 || b.Seg[i] < 0 || b.Pos[i] != b.Tokens[i]%1000 {
					t.Fatalf("position %d: token %d target %d seg %d pos %d", i, b.Tokens[i], tg, b.Seg[i], b.Pos[i])
				}
			}
		}
		if got != want {
			t.Fatalf("%d targets, want %d", got, want)
		}
	})
}

func FuzzReadMetrics(f *testing.F) {
	f.Add([]byte(`{"step":1,"loss":2.5,"lr":1e-5}` + "\n"))
	f.Add([]byte("{\"step\":0}\nnull\n"))
	f.Add([]byte(`{"step":5,"eval_loss":2.25,"eval_targets":40}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := ReadMetrics(bytes.NewReader(b), "m")
		if err == nil {
			for _, r := range recs {
				if r.Step <= 0 {
					t.Fatalf("record with step %d accepted", r.Step)
				}
			}
		}
	})
}

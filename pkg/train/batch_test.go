package train

import (
	"reflect"
	"sort"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

func ex(ids []int32, mask string) tokstream.Example {
	e := tokstream.Example{IDs: ids}
	for _, c := range mask {
		e.Mask = append(e.Mask, c == '1')
	}
	return e
}

func TestMicroBatchTargetsPacked(t *testing.T) {
	exs := []tokstream.Example{
		ex([]int32{1, 10, 11, 12, 2}, "00111"), // prompt 1 10, completion 11 12 EOS
		ex([]int32{1, 20, 21}, "001"),
		ex([]int32{1, 30, 31, 32, 33, 34, 2}, "0000011"),
	}
	c := BatchConfig{SeqLen: 8, Packing: true, BatchSize: 3, MicroBatch: 4}
	mbs := c.MicroBatches(exs, []int{0, 1, 2})
	if len(mbs) != 1 {
		t.Fatalf("%d micro-batches", len(mbs))
	}
	b := mbs[0]
	// first-fit decreasing: row 0 = ex2 (7 tokens); ex0 (5) opens row 1; ex1 (3) joins row 1.
	if b.B != 2 || b.T != 8 {
		t.Fatalf("B=%d T=%d, want 2×8", b.B, b.T)
	}
	want := struct{ tok, pos, seg, tgt []int32 }{
		tok: []int32{1, 30, 31, 32, 33, 34, 2, 0, 1, 10, 11, 12, 2, 1, 20, 21},
		pos: []int32{0, 1, 2, 3, 4, 5, 6, 0, 0, 1, 2, 3, 4, 0, 1, 2},
		seg: []int32{0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 1, 1, 1},
		tgt: []int32{-1, -1, -1, -1, 34, 2, -1, -1, -1, 11, 12, 2, -1, -1, 21, -1},
	}
	if !reflect.DeepEqual(b.Tokens, want.tok) || !reflect.DeepEqual(b.Pos, want.pos) ||
		!reflect.DeepEqual(b.Seg, want.seg) || !reflect.DeepEqual(b.Target, want.tgt) {
		t.Errorf("got\n tok %v\n pos %v\n seg %v\n tgt %v", b.Tokens, b.Pos, b.Seg, b.Target)
	}
	if CountTargets(b) != 6 || CountTokens(b) != 15 {
		t.Errorf("targets %d tokens %d", CountTargets(b), CountTokens(b))
	}
}

func TestMicroBatchesPadded(t *testing.T) {
	exs := []tokstream.Example{
		ex([]int32{1, 10, 11}, "011"),
		ex([]int32{1, 20, 21, 22, 23}, "00011"),
		ex([]int32{1, 30}, "01"),
	}
	c := BatchConfig{SeqLen: 4, Packing: false, BatchSize: 3, MicroBatch: 2}
	mbs := c.MicroBatches(exs, []int{0, 1, 2})
	if len(mbs) != 2 {
		t.Fatalf("%d micro-batches, want 2", len(mbs))
	}
	// micro-batch 0: ex0 (3) and ex1 truncated to 4 → T = 4, padded like HF's collator.
	b := mbs[0]
	if b.B != 2 || b.T != 4 {
		t.Fatalf("B=%d T=%d", b.B, b.T)
	}
	if want := []int32{10, 11, -1, -1, -1, -1, 22, -1}; !reflect.DeepEqual(b.Target, want) {
		t.Errorf("targets %v, want %v", b.Target, want)
	}
	if want := []int32{0, 0, 0, -1, 0, 0, 0, 0}; !reflect.DeepEqual(b.Seg, want) {
		t.Errorf("seg %v, want %v", b.Seg, want)
	}
	if b2 := mbs[1]; b2.B != 1 || b2.T != 2 || !reflect.DeepEqual(b2.Target, []int32{30, -1}) {
		t.Errorf("second micro-batch %+v", b2)
	}
}

func TestOrderIsSeededPermutation(t *testing.T) {
	c := BatchConfig{Shuffle: true, Seed: 7}
	a, b := c.Order(100, 0), c.Order(100, 0)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed and epoch, different order")
	}
	if reflect.DeepEqual(a, c.Order(100, 1)) {
		t.Error("epochs 0 and 1 have the same order")
	}
	c2 := c
	c2.Seed = 8
	if reflect.DeepEqual(a, c2.Order(100, 0)) {
		t.Error("seeds 7 and 8 give the same order")
	}
	s := append([]int(nil), a...)
	sort.Ints(s)
	for i := range s {
		if s[i] != i {
			t.Fatalf("not a permutation: %v", a)
		}
	}
	// The order is part of the checkpoint contract: pin it.
	if got := c.Order(10, 3); !reflect.DeepEqual(got, []int{1, 6, 0, 4, 3, 9, 5, 2, 7, 8}) {
		t.Errorf("order changed: %v (this breaks resuming old checkpoints)", got)
	}
	if got := (BatchConfig{}).Order(4, 0); !reflect.DeepEqual(got, []int{0, 1, 2, 3}) {
		t.Errorf("unshuffled order %v", got)
	}
}

func TestGlobalBatches(t *testing.T) {
	var exs []tokstream.Example
	for _, n := range []int{3, 5, 2, 9, 4, 1} {
		exs = append(exs, tokstream.Example{IDs: make([]int32, n), Mask: make([]bool, n)})
	}
	order := []int{0, 1, 2, 3, 4, 5}
	c := BatchConfig{SeqLen: 8, BatchSize: 4}
	if got := c.GlobalBatches(exs, order); !reflect.DeepEqual(got, [][]int{{0, 1, 2, 3}, {4, 5}}) {
		t.Errorf("by examples: %v", got)
	}
	// by tokens (lengths capped at SeqLen 8): 3+5=8 | 2 (+8 > 10) | 8 (9 capped) | 4+1
	c = BatchConfig{SeqLen: 8, BatchTokens: 10}
	if got := c.GlobalBatches(exs, order); !reflect.DeepEqual(got, [][]int{{0, 1, 2}, {3}, {4, 5}}) {
		t.Errorf("by tokens: %v", got)
	}
}

package llama

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/internal/testutil"
)

// inferTol is the agreement between the KV-cache path and Forward: the
// same GEMMs, but the cached attention sums in another order.
const inferTol = 1e-5

func seqTokens(n, V int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32((i*13 + 5) % V)
	}
	return t
}

// forwardRows runs Forward on one sequence and returns its logits [n, V].
func forwardRows(m *Model, toks []int32) []float32 {
	n := len(toks)
	b := &Batch{B: 1, T: n, Tokens: toks, Pos: make([]int32, n), Seg: make([]int32, n)}
	for i := range b.Pos {
		b.Pos[i] = int32(i)
	}
	return m.Forward(b)
}

var inferConfigs = []struct {
	name string
	tied bool
	kv   int
}{{"mha-untied", false, 4}, {"gqa-tied", true, 2}, {"mqa-untied", false, 1}, {"mqa-tied", true, 1}}

func TestFeedMatchesForward(t *testing.T) {
	for _, ic := range inferConfigs {
		t.Run(ic.name, func(t *testing.T) {
			m := New(tinyConfig(ic.tied, ic.kv), 21)
			V := m.Config.VocabSize
			toks := seqTokens(19, V)
			want := forwardRows(m, toks)
			// whole sequence at once
			c, err := m.NewKVCache(24)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Feed(c, toks)
			if err != nil {
				t.Fatal(err)
			}
			n := len(toks)
			testutil.CloseRel(t, "feed whole", got, want[(n-1)*V:], inferTol)
			if c.Len() != n || c.Cap() != 24 {
				t.Errorf("cache len %d cap %d", c.Len(), c.Cap())
			}
			// a prefix, then token by token through FeedBatch
			c.Truncate(0)
			got, err = m.Feed(c, toks[:7])
			if err != nil {
				t.Fatal(err)
			}
			testutil.CloseRel(t, "feed prefix", got, want[6*V:7*V], inferTol)
			for i := 7; i < n; i++ {
				got, err = m.FeedBatch([]*KVCache{c}, toks[i:i+1])
				if err != nil {
					t.Fatal(err)
				}
				testutil.CloseRel(t, "feed step", got, want[i*V:(i+1)*V], inferTol)
			}
			// Truncate back into the sequence and re-feed: same logits
			c.Truncate(10)
			got, err = m.Feed(c, toks[10:12])
			if err != nil {
				t.Fatal(err)
			}
			testutil.CloseRel(t, "feed after truncate", got, want[11*V:12*V], inferTol)
		})
	}
}

// FeedBatch over caches of different lengths equals each sequence fed on
// its own.
func TestFeedBatchMatchesFeed(t *testing.T) {
	for _, ic := range inferConfigs {
		t.Run(ic.name, func(t *testing.T) {
			m := New(tinyConfig(ic.tied, ic.kv), 22)
			V := m.Config.VocabSize
			lens := []int{3, 9, 1, 14}
			var seqs [][]int32
			var caches []*KVCache
			for i, L := range lens {
				s := seqTokens(L+3, V)
				for j := range s {
					s[j] = (s[j] + int32(i*5)) % int32(V)
				}
				seqs = append(seqs, s)
				c, err := m.NewKVCache(20)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := m.Feed(c, s[:L]); err != nil {
					t.Fatal(err)
				}
				caches = append(caches, c)
			}
			for step := 0; step < 3; step++ {
				toks := make([]int32, len(lens))
				for i, L := range lens {
					toks[i] = seqs[i][L+step]
				}
				got, err := m.FeedBatch(caches, toks)
				if err != nil {
					t.Fatal(err)
				}
				got = append([]float32(nil), got...)
				for i, L := range lens {
					want := forwardRows(m, seqs[i][:L+step+1])
					testutil.CloseRel(t, "batched", got[i*V:(i+1)*V], want[(L+step)*V:], inferTol)
				}
			}
			for i, c := range caches {
				if c.Len() != lens[i]+3 {
					t.Errorf("cache %d: len %d", i, c.Len())
				}
			}
		})
	}
}

func TestFeedErrors(t *testing.T) {
	m := New(tinyConfig(false, 2), 1)
	if _, err := m.NewKVCache(0); err == nil {
		t.Error("zero-length cache")
	}
	if _, err := m.NewKVCache(m.Config.MaxPositionEmbeddings + 1); err == nil {
		t.Error("cache beyond max_position_embeddings")
	}
	c, _ := m.NewKVCache(4)
	if _, err := m.Feed(c, []int32{1, 2, 3, 4, 5}); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("overflow: %v", err)
	}
	if _, err := m.Feed(c, []int32{1, 29}); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("bad id: %v", err)
	}
	if c.Len() != 0 {
		t.Errorf("failed feeds changed the cache: len %d", c.Len())
	}
	m.Feed(c, []int32{1, 2, 3, 4})
	if _, err := m.FeedBatch([]*KVCache{c}, []int32{1}); err == nil {
		t.Error("FeedBatch into a full cache")
	}
	c2, _ := m.NewKVCache(4)
	if _, err := m.FeedBatch([]*KVCache{c2, c2}, []int32{1, 2}); err == nil {
		t.Error("the same cache twice")
	}
	other := New(tinyConfig(false, 2), 1)
	if _, err := other.Feed(c2, []int32{1}); err == nil {
		t.Error("cache of another model")
	}
}

// Open keeps bf16/f16 weights as stored (memory-mapped) and gives the same
// logits as the fp32 model holding the same, exactly widened, values.
func TestOpenHalfMatchesF32(t *testing.T) {
	for _, dt := range []string{"bfloat16", "float16"} {
		for _, tied := range []bool{false, true} {
			dir := filepath.Join(t.TempDir(), dt)
			if err := New(tinyConfig(tied, 2), 5).Save(dir, dt); err != nil {
				t.Fatal(err)
			}
			half, err := Open(dir, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := half.Weight(half.Param("model.layers.0.mlp.up_proj.weight")).DType().String(); got != map[string]string{"bfloat16": "bf16", "float16": "f16"}[dt] {
				t.Fatalf("%s: weights held as %s", dt, got)
			}
			if half.closer == nil {
				t.Errorf("%s: weights were copied, not memory-mapped", dt)
			}
			f32, err := Load(dir) // widens to fp32 in the arena
			if err != nil {
				t.Fatal(err)
			}
			conv, err := Open(dir, OpenOptions{DType: "float32"})
			if err != nil {
				t.Fatal(err)
			}
			toks := seqTokens(11, f32.Config.VocabSize)
			want := forwardRows(f32, toks)
			got := forwardRows(half, toks)
			// identical: widening is exact and the same kernels run
			if e := testutil.MaxRelErr(got, want); e != 0 {
				t.Errorf("%s tied=%v: Forward on stored weights differs from fp32 by %.3g", dt, tied, e)
			}
			c, _ := half.NewKVCache(16)
			last, err := half.Feed(c, toks)
			if err != nil {
				t.Fatal(err)
			}
			c2, _ := conv.NewKVCache(16)
			last2, _ := conv.Feed(c2, toks)
			if e := testutil.MaxRelErr(last, last2); e != 0 {
				t.Errorf("%s tied=%v: Feed on stored weights differs from converted by %.3g", dt, tied, e)
			}
			if err := half.Close(); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := New(tinyConfig(false, 2), 5).Save(dir, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, OpenOptions{DType: "int8"}); err == nil {
		t.Error("dtype int8 accepted")
	}
	if _, err := Open(dir, OpenOptions{Device: "cuda"}); err == nil || !strings.Contains(err.Error(), "cuda") {
		t.Errorf("device cuda: %v", err)
	}
	m, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := &Batch{B: 1, T: 2, Tokens: []int32{1, 2}, Pos: []int32{0, 1}, Seg: []int32{0, 0}, Target: []int32{2, -1}}
	if _, _, err := m.ForwardBackward(b, 1); err == nil {
		t.Error("training an opened model")
	}
	os.Remove(filepath.Join(dir, "model.safetensors"))
	if _, err := Open(dir, OpenOptions{}); err == nil {
		t.Error("no weights")
	}
}

// Open of a sharded bf16 directory (index + several mapped files), and
// Save from an opened model, round trip: the weights come back as stored.
func TestOpenShardedAndResave(t *testing.T) {
	dir := t.TempDir()
	src := New(tinyConfig(false, 2), 8)
	if err := src.SaveSharded(filepath.Join(dir, "bf"), "bfloat16", 6000); err != nil {
		t.Fatal(err)
	}
	m, err := Open(filepath.Join(dir, "bf"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ref, err := Load(filepath.Join(dir, "bf"))
	if err != nil {
		t.Fatal(err)
	}
	toks := seqTokens(9, m.Config.VocabSize)
	if e := testutil.MaxRelErr(forwardRows(m, toks), forwardRows(ref, toks)); e != 0 {
		t.Errorf("sharded bf16: logits differ from the fp32 load by %.3g", e)
	}
	if err := m.Save(filepath.Join(dir, "again"), "bfloat16"); err != nil {
		t.Fatal(err)
	}
	back, err := Load(filepath.Join(dir, "again"))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ref.Params() {
		testutil.CloseRel(t, p.Name, back.ReadWeights(back.Params()[i]), ref.ReadWeights(p), 0)
	}
	// float32 files are mapped as they are
	if err := src.Save(filepath.Join(dir, "f32"), ""); err != nil {
		t.Fatal(err)
	}
	f, err := Open(filepath.Join(dir, "f32"), OpenOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if e := testutil.MaxRelErr(forwardRows(f, toks), forwardRows(src, toks)); !(e <= inferTol) {
		t.Errorf("f32 open: logits differ by %.3g", e)
	}
}

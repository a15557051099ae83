package weightdiff

import (
	"context"
	"fmt"
	"github.com/alpaca-go/alpaca/pkg/xio"
	"hash"
	"os"
	"path/filepath"
	"sync"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// tplan is the work on one tensor.
type tplan struct {
	name string
	n    int64 // elements of the tuned/recovered tensor
	mt   *ManifestTensor

	a   []byte // tuned (make) or diff (recover, mode diff) bytes
	aDT safetensors.DType
	r   []byte // raw bytes (shorter than n elements when resized)
	rDT safetensors.DType

	rawRel   func([]byte)   // drops raw pages from the resident set
	aRel     func([]byte)   // the same for the diff input (recover)
	prefetch []func([]byte) // start reading inputs ahead: raw, a
	rawElems int64          // elements present in the raw tensor
	cols     int64          // row length, for the pad rows
	mean     []float32      // Alpaca's new-row value (mode diff, resized tensors)

	outDT  safetensors.DType // dtype of what is written (diff or recovered)
	recDT  safetensors.DType // dtype of the recovered tensor
	frames [][]byte          // xor recover: compressed frames
	chunk  int64             // elements per task

	// consumer state
	h, rh      hash.Hash
	sum        float64
	inexact    int64
	frameSizes []int64
	offset     int64
}

// rawChunk fills dst with raw[lo:hi] as float32, using the mean row past
// the end of a resized raw tensor.
func (tp *tplan) rawChunk(dst []float32, lo, hi int64) {
	end := min(hi, tp.rawElems)
	es := int64(tp.rDT.Size())
	if lo < end {
		decodeInto(dst[:end-lo], tp.rDT, tp.r[lo*es:end*es])
	}
	for i := max(lo, tp.rawElems); i < hi; i++ {
		dst[i-lo] = tp.mean[i%tp.cols]
	}
}

// rawBytes is raw[lo:hi] as bytes, clipped to what the raw tensor has.
func (tp *tplan) rawBytes(lo, hi int64) []byte {
	es := int64(tp.rDT.Size())
	end := min(hi, tp.rawElems)
	if lo >= end {
		return nil
	}
	return tp.r[lo*es : end*es]
}

// prefetcher returns a source's Prefetch method, if it has one.
func prefetcher(s any) func([]byte) {
	if p, ok := s.(interface{ Prefetch([]byte) }); ok {
		return p.Prefetch
	}
	return nil
}

func (tp *tplan) releaseRaw(lo, hi int64) {
	if rb := tp.rawBytes(lo, hi); rb != nil && tp.rawRel != nil {
		tp.rawRel(rb)
	}
}

// prefetchChunk asks the kernel to read a task's inputs in the background
// while earlier tasks compute.
func (tp *tplan) prefetchChunk(lo, hi int64) {
	if len(tp.prefetch) == 0 {
		return
	}
	if rb := tp.rawBytes(lo, hi); rb != nil && tp.prefetch[0] != nil {
		tp.prefetch[0](rb)
	}
	if len(tp.prefetch) > 1 && tp.prefetch[1] != nil {
		if tp.frames != nil {
			if int(hi) > 0 && len(tp.frames) > 0 {
				// xor: the frame for this chunk
				if i := int(lo / tp.chunk); i < len(tp.frames) {
					tp.prefetch[1](tp.frames[i])
				}
			}
		} else if tp.a != nil {
			es := int64(tp.aDT.Size())
			tp.prefetch[1](tp.a[lo*es : hi*es])
		}
	}
}

type task struct {
	tp          *tplan
	idx         int // chunk number within the tensor
	lo, hi      int64
	first, last bool

	out     []byte
	rec     []byte // make: recovered bytes when they differ from the tuned ones
	sum     float64
	inexact int64
	err     error
	done    chan struct{}
}

// run computes the tasks of plans on workers goroutines and hands them to
// consume in order. At most 2*workers tasks are in flight, so memory stays
// bounded whatever the model size.
func run(ctx context.Context, workers int, plans []*tplan, compute func(*task), consume func(*task) error) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *task)
	ordered := make(chan *task, 2*workers)
	go func() {
		defer cli.Guard()
		defer close(work)
		defer close(ordered)
		for _, tp := range plans {
			n := tp.n
			chunks := (n + tp.chunk - 1) / tp.chunk
			if chunks == 0 {
				chunks = 1 // empty tensors still get one (empty) task
			}
			for c := int64(0); c < chunks; c++ {
				t := &task{tp: tp, idx: int(c), lo: c * tp.chunk, hi: min((c+1)*tp.chunk, n), first: c == 0, last: c == chunks-1, done: make(chan struct{})}
				tp.prefetchChunk(t.lo, t.hi)
				select {
				case ordered <- t:
				case <-ctx.Done():
					return
				}
				select {
				case work <- t:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer cli.Guard()
			defer wg.Done()
			for t := range work {
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.err = fmt.Errorf("tensor %q: internal error: %v", t.tp.name, p)
						}
						close(t.done)
					}()
					if ctx.Err() == nil {
						compute(t)
					}
				}()
			}
		}()
	}
	var err error
	for t := range ordered {
		if err != nil {
			continue // drain
		}
		select {
		case <-t.done:
		case <-ctx.Done():
			err = ctx.Err()
			cancel()
			continue
		}
		if t.err != nil {
			err = t.err
		} else {
			err = consume(t)
		}
		if err != nil {
			cancel()
		}
	}
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

var f32Pool sync.Pool

func getF32(n int64) []float32 {
	if p, ok := f32Pool.Get().(*[]float32); ok && int64(cap(*p)) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}

func putF32(v []float32) { f32Pool.Put(&v) }

// modelWriter writes tensors, in a fixed order, into one safetensors file
// or HF-named shards plus an index.
type modelWriter struct {
	dir     string
	plan    [][]safetensors.TensorInfo
	shard   int
	inShard int
	cur     *safetensors.Writer
	meta    map[string]string
}

func newModelWriter(dir string, infos []safetensors.TensorInfo, shardBytes int64, meta map[string]string) *modelWriter {
	var total int64
	for _, ti := range infos {
		total += ti.NumBytes()
	}
	plan := [][]safetensors.TensorInfo{infos}
	if shardBytes > 0 && total > shardBytes {
		plan = safetensors.PlanShards(infos, shardBytes)
	}
	return &modelWriter{dir: dir, plan: plan, meta: meta}
}

func (w *modelWriter) fileName(i int) string {
	if len(w.plan) == 1 {
		return "model.safetensors"
	}
	return safetensors.ShardName(i+1, len(w.plan))
}

func (w *modelWriter) begin(name string) error {
	if w.cur == nil {
		if w.shard >= len(w.plan) {
			return fmt.Errorf("tensor %q was not planned", name)
		}
		var err error
		w.cur, err = safetensors.NewWriter(filepath.Join(w.dir, w.fileName(w.shard)), w.plan[w.shard], w.meta)
		if err != nil {
			return err
		}
	}
	return w.cur.Begin(name)
}

func (w *modelWriter) write(p []byte) error {
	_, err := w.cur.Write(p)
	return err
}

func (w *modelWriter) endTensor() error {
	w.inShard++
	if w.inShard < len(w.plan[w.shard]) {
		return nil
	}
	err := w.cur.Commit()
	w.cur = nil
	w.shard++
	w.inShard = 0
	return err
}

func (w *modelWriter) finish() error {
	if w.cur != nil {
		return fmt.Errorf("internal error: shard %d left open", w.shard)
	}
	if len(w.plan) == 1 {
		if len(w.plan[0]) == 0 {
			return safetensors.WriteFile(filepath.Join(w.dir, "model.safetensors"), nil, w.meta)
		}
		return nil
	}
	index := map[string][]safetensors.TensorInfo{}
	for i, g := range w.plan {
		index[w.fileName(i)] = g
	}
	return safetensors.WriteIndex(w.dir, index)
}

func (w *modelWriter) abort() {
	if w.cur != nil {
		w.cur.Abort()
		w.cur = nil
	}
}

// outDir writes a directory under a temporary name next to its final place;
// commit renames it into place, abort removes it.
type outDir struct{ *xio.Dir }

func newOutDir(final string, force bool) (*outDir, error) {
	final = filepath.Clean(final)
	if st, err := os.Stat(final); err == nil {
		if !st.IsDir() {
			return nil, fmt.Errorf("%s exists and is not a directory", final)
		}
		ents, _ := os.ReadDir(final)
		if len(ents) > 0 && !force {
			return nil, fmt.Errorf("%s exists and is not empty (use --force to replace it)", final)
		}
	}
	d, err := xio.CreateDir(final)
	if err != nil {
		return nil, err
	}
	return &outDir{d}, nil
}

func (o *outDir) commit() error { return o.Commit() }

func (o *outDir) abort() { o.Abort() }

// auxFiles are the non-weight files of a model directory that travel with
// the weights.
var auxFiles = []string{
	"config.json", "generation_config.json", "tokenizer.model", "tokenizer.json",
	"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
}

// copyAux copies the aux files present in the first of srcs that has each.
func copyAux(dst string, srcs ...string) ([]string, error) {
	var copied []string
	for _, name := range auxFiles {
		for _, src := range srcs {
			b, err := xio.ReadRegular(filepath.Join(src, name), 1<<30)
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
				return copied, err
			}
			copied = append(copied, name)
			break
		}
	}
	return copied, nil
}

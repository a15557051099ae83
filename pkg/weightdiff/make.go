// Package weightdiff makes and applies weight diffs the way Stanford
// Alpaca published Alpaca-7B (tuned − raw per tensor in float32, recovered
// with raw + diff, after Alpaca's pad-token embedding resize), plus a
// bit-exact xor mode, streaming tensors in bounded chunks so that a 7B model
// never has to fit in memory.
package weightdiff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/alpaca-go/alpaca/pkg/torchmath"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/xio"
	"github.com/klauspost/compress/zstd"
)

// Options are shared by make, recover and verify.
type Options struct {
	Workers    int
	ShardBytes int64 // largest output shard; 0 = one file
	ChunkBytes int64 // bytes of a tensor handled per task (default 4 MiB)
	Force      bool  // replace a non-empty output directory
	Progress   func(done, total int64)
	Log        io.Writer // notes (may be nil)
}

func (o *Options) chunkBytes() int64 {
	if o.ChunkBytes <= 0 {
		return 4 << 20
	}
	return max(8, o.ChunkBytes&^7)
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// MakeOptions configure Make.
type MakeOptions struct {
	Options
	Raw, Tuned, Out string
	Mode            string            // "diff" (default) or "xor"
	DType           safetensors.DType // stored dtype of the differences (mode diff; default F32)
}

// Summary reports what a run did.
type Summary struct {
	Tensors  int
	Params   int64
	Bytes    int64 // bytes written (diff or recovered weights)
	Sum      float64
	SumTorch float64
	Inexact  int64 // elements that arithmetic recovery does not give back exactly
	Checked  int   // tensors checked bit-exactly against a manifest
	Files    []string
}

// isEmbedding reports whether a tensor is one Alpaca's pad-token resize
// grows (input embeddings or the output head).
func isEmbedding(name string) bool {
	return strings.HasSuffix(name, "embed_tokens.weight") || strings.HasSuffix(name, "lm_head.weight") ||
		strings.HasSuffix(name, "wte.weight") || strings.HasSuffix(name, "embed_out.weight")
}

// matchShapes checks a raw tensor against the tuned one: equal shapes, or
// the pad-token resize (rank 2, same columns, tuned has more rows). It
// returns the rows added.
func matchShapes(name string, raw, tuned safetensors.TensorInfo) (int64, error) {
	if eqShape(raw.Shape, tuned.Shape) {
		return 0, nil
	}
	if isEmbedding(name) && len(raw.Shape) == 2 && len(tuned.Shape) == 2 && raw.Shape[1] == tuned.Shape[1] && tuned.Shape[0] > raw.Shape[0] {
		return tuned.Shape[0] - raw.Shape[0], nil
	}
	return 0, fmt.Errorf("tensor %q: shape mismatch: raw %v, tuned %v", name, raw.Shape, tuned.Shape)
}

func eqShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// meanRow is Alpaca's value for new embedding rows: the mean of the
// existing rows, computed as torch (CPU, float32) computes
// weight[:-n].mean(dim=0) (see torchmath.MeanRows), so that the recovered
// [PAD] rows equal Python's bit for bit. Rows are decoded one at a time and
// their pages released as the sum goes.
func meanRow(src Source, name string, ti safetensors.TensorInfo) ([]float32, error) {
	b, err := src.Bytes(name)
	if err != nil {
		return nil, err
	}
	rows, cols := ti.Shape[0], ti.Shape[1]
	if rows == 0 {
		return nil, fmt.Errorf("tensor %q: cannot resize an empty embedding", name)
	}
	es := int64(ti.DType.Size())
	out := torchmath.MeanRows(rows, cols, func(r int64, dst []float32) {
		decodeInto(dst, ti.DType, b[r*cols*es:(r+1)*cols*es])
		if r%4096 == 4095 {
			src.Release(b[(r-4095)*cols*es : (r+1)*cols*es])
		}
	})
	src.Release(b)
	return out, nil
}

// compareNames reports tensors present in one model but not the other.
func compareNames(rawNames, tunedNames []string, rawWhat, tunedWhat string) error {
	in := map[string]bool{}
	for _, n := range rawNames {
		in[n] = true
	}
	var missing, extra []string
	for _, n := range tunedNames {
		if !in[n] {
			missing = append(missing, n)
		}
		delete(in, n)
	}
	for n := range in {
		extra = append(extra, n)
	}
	sort.Strings(extra)
	if len(missing) > 0 {
		return fmt.Errorf("tensor %q (and %d more) of the %s is missing from the %s", missing[0], len(missing)-1, tunedWhat, rawWhat)
	}
	if len(extra) > 0 {
		return fmt.Errorf("tensor %q (and %d more) of the %s is not in the %s", extra[0], len(extra)-1, rawWhat, tunedWhat)
	}
	return nil
}

// Make writes the diff of tuned against raw into opt.Out.
func Make(ctx context.Context, opt MakeOptions) (*Summary, error) {
	if opt.Mode == "" {
		opt.Mode = "diff"
	}
	if opt.Mode != "diff" && opt.Mode != "xor" {
		return nil, fmt.Errorf("unknown mode %q (want diff or xor)", opt.Mode)
	}
	if opt.DType == "" {
		opt.DType = safetensors.F32
	}
	if !opt.DType.IsFloat() {
		return nil, fmt.Errorf("diff dtype %s is not a float type", opt.DType)
	}
	raw, _, err := OpenModel(opt.Raw)
	if err != nil {
		return nil, fmt.Errorf("raw model: %w", err)
	}
	defer raw.Close()
	tuned, _, err := OpenModel(opt.Tuned)
	if err != nil {
		return nil, fmt.Errorf("tuned model: %w", err)
	}
	defer tuned.Close()
	od, err := newOutDir(opt.Out, opt.Force)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			od.abort()
		}
	}()
	names := tuned.Names()
	sort.Strings(names)
	want := map[string][]int64{}
	for _, n := range names {
		ti, _ := tuned.Info(n)
		want[n] = ti.Shape
	}
	if s, added := withRotaryBuffers(raw, want, opt.Tuned, opt.Raw); len(added) > 0 {
		raw = s
		opt.logf("note: the raw model has no %s buffers (newer conversion); computed %d of them (1/theta^(2i/d), float32)", invFreqSuffix, len(added))
	}
	if err := compareNames(raw.Names(), names, "raw model", "tuned model"); err != nil {
		return nil, err
	}
	man := &Manifest{Format: ManifestFormat, Version: 1, Mode: opt.Mode}
	if opt.Mode == "diff" {
		man.DiffDType = string(opt.DType)
	} else {
		man.ChunkBytes = opt.chunkBytes()
	}
	var plans []*tplan
	var outInfos []safetensors.TensorInfo
	var total int64
	for _, name := range names {
		ti, _ := tuned.Info(name)
		ri, _ := raw.Info(name)
		added, err := matchShapes(name, ri, ti)
		if err != nil {
			return nil, err
		}
		if opt.Mode == "diff" {
			if !ti.DType.IsFloat() || !ri.DType.IsFloat() {
				return nil, fmt.Errorf("tensor %q: dtype %s (raw %s) is not a float type: use --mode xor", name, ti.DType, ri.DType)
			}
		} else if ti.DType != ri.DType {
			return nil, fmt.Errorf("tensor %q: dtype mismatch: raw %s, tuned %s (xor needs equal dtypes; use --mode diff)", name, ri.DType, ti.DType)
		}
		if added > 0 {
			if man.PadRows != 0 && man.PadRows != added {
				return nil, fmt.Errorf("tensor %q: %d rows added, but %d to %s", name, added, man.PadRows, man.Resized[0])
			}
			man.PadRows = added
			man.Resized = append(man.Resized, name)
		}
		a, err := tuned.Bytes(name)
		if err != nil {
			return nil, err
		}
		r, err := raw.Bytes(name)
		if err != nil {
			return nil, err
		}
		tp := &tplan{name: name, n: ti.NumElements(), a: a, aDT: ti.DType, r: r, rDT: ri.DType,
			rawElems: ri.NumElements(), recDT: ti.DType, rawRel: raw.Release,
			prefetch: []func([]byte){prefetcher(raw), prefetcher(tuned)}}
		if len(ti.Shape) == 2 {
			tp.cols = ti.Shape[1]
		}
		if opt.Mode == "diff" {
			tp.outDT = opt.DType
			tp.chunk = max(1, opt.chunkBytes()/4)
			if added > 0 {
				if tp.mean, err = meanRow(raw, name, ri); err != nil {
					return nil, err
				}
			}
			outInfos = append(outInfos, safetensors.TensorInfo{Name: name, DType: opt.DType, Shape: ti.Shape})
		} else {
			tp.outDT = ti.DType
			tp.chunk = max(1, opt.chunkBytes()/int64(ti.DType.Size()))
		}
		man.Tensors = append(man.Tensors, ManifestTensor{Name: name, DType: string(ti.DType), Shape: ti.Shape})
		tp.mt = &man.Tensors[len(man.Tensors)-1]
		total += ti.NumBytes()
		plans = append(plans, tp)
	}
	for i := range plans { // man.Tensors may have moved while growing
		plans[i].mt = &man.Tensors[i]
	}
	if man.PadRows > 0 {
		opt.logf("pad-token resize: %d row(s) added to %s (Alpaca's mean-row init)", man.PadRows, strings.Join(man.Resized, ", "))
	}

	sum := &Summary{Tensors: len(plans)}
	sums := map[string]float64{}
	var done int64
	progress := func(n int64) {
		done += n
		if opt.Progress != nil {
			opt.Progress(done, total)
		}
	}
	finishTensor := func(tp *tplan) {
		tp.mt.SHA256 = hex.EncodeToString(tp.h.Sum(nil))
		if tp.rh != nil {
			tp.mt.RecoveredSHA256 = hex.EncodeToString(tp.rh.Sum(nil))
			tp.mt.Inexact = tp.inexact
			sum.Inexact += tp.inexact
		}
		sums[tp.name] = tp.sum
		sum.Sum += tp.sum
		sum.Params += tp.n
	}

	if opt.Mode == "diff" {
		mw := newModelWriter(od.Path, outInfos, opt.ShardBytes, map[string]string{"format": "pt", "weightdiff": "diff"})
		defer mw.abort()
		err = run(ctx, opt.Workers, plans, computeMakeDiff, func(t *task) error {
			tp := t.tp
			es := int64(tp.aDT.Size())
			tb := tp.a[t.lo*es : t.hi*es]
			if t.first {
				tp.h = sha256.New()
				if err := mw.begin(tp.name); err != nil {
					return err
				}
			}
			if err := mw.write(t.out); err != nil {
				return err
			}
			sum.Bytes += int64(len(t.out))
			tp.h.Write(tb)
			if t.rec != nil && tp.rh == nil {
				tp.rh = sha256.New()
				tp.rh.Write(tp.a[:t.lo*es])
			}
			if tp.rh != nil {
				if t.rec != nil {
					tp.rh.Write(t.rec)
				} else {
					tp.rh.Write(tb)
				}
			}
			tuned.Release(tb)
			tp.sum += t.sum
			tp.inexact += t.inexact
			progress(int64(len(tb)))
			if t.last {
				finishTensor(tp)
				return mw.endTensor()
			}
			return nil
		})
		if err == nil {
			err = mw.finish()
		}
	} else {
		err = makeXor(ctx, &opt, od.Path, plans, tuned, func(tp *tplan) { finishTensor(tp) }, progress, sum)
	}
	if err != nil {
		return nil, err
	}
	man.Sum = sum.Sum
	man.SumTorch = torchSum(names, sums)
	sum.SumTorch = man.SumTorch
	mb, err := json.MarshalIndent(man, "", " ")
	if err != nil {
		return nil, err
	}
	if err := xio.AtomicWriteFile(filepath.Join(od.Path, ManifestName), append(mb, '\n')); err != nil {
		return nil, err
	}
	if sum.Files, err = copyAux(od.Path, opt.Tuned); err != nil {
		return nil, err
	}
	if err := od.commit(); err != nil {
		return nil, err
	}
	ok = true
	return sum, nil
}

func computeMakeDiff(t *task) {
	tp := t.tp
	n := t.hi - t.lo
	if n == 0 {
		t.out = []byte{}
		return
	}
	tes := int64(tp.aDT.Size())
	tb := tp.a[t.lo*tes : t.hi*tes]
	if littleEndian && tp.aDT == safetensors.F32 && tp.rDT == safetensors.F32 && tp.outDT == safetensors.F32 && t.hi <= tp.rawElems {
		makeDiffF32(t, tb)
		return
	}
	tv := getF32(n)
	rv := getF32(n)
	defer putF32(tv)
	defer putF32(rv)
	decodeInto(tv, tp.aDT, tb)
	tp.rawChunk(rv, t.lo, t.hi)
	for i := range tv {
		d := tv[i] - rv[i]
		if math.IsNaN(float64(d)) || math.IsInf(float64(d), 0) {
			t.err = fmt.Errorf("tensor %q: element %d: tuned − raw is not finite (tuned %v, raw %v)", tp.name, t.lo+int64(i), tv[i], rv[i])
			return
		}
		tv[i] = d // tv now holds the difference
	}
	t.out = make([]byte, n*int64(tp.outDT.Size()))
	encodeInto(t.out, tp.outDT, tv)
	if tp.outDT != safetensors.F32 {
		decodeInto(tv, tp.outDT, t.out) // what recover will read back
	}
	for i := range tv {
		tv[i] += rv[i] // recovered, exactly as recover computes it
	}
	t.sum = sum64(tv)
	rec := make([]byte, len(tb))
	encodeInto(rec, tp.recDT, tv)
	if !bytes.Equal(rec, tb) {
		t.rec = rec
		for i := int64(0); i < n; i++ {
			if !bytes.Equal(rec[i*tes:(i+1)*tes], tb[i*tes:(i+1)*tes]) {
				t.inexact++
			}
		}
	}
	tp.releaseRaw(t.lo, t.hi)
}

// makeDiffF32 is computeMakeDiff for float32 models in one pass without
// conversions.
func makeDiffF32(t *task, tb []byte) {
	tp := t.tp
	t.out = make([]byte, len(tb))
	d := asF32(t.out)
	tv := asF32(tb)
	rv := asF32(tp.r[4*t.lo : 4*t.hi])
	var s float64
	var inexact int64
	for i := range d {
		x := tv[i] - rv[i]
		d[i] = x
		y := rv[i] + x // what recover computes
		s += float64(y)
		if math.Float32bits(y) != math.Float32bits(tv[i]) {
			inexact++
		}
	}
	// a float64 sum of float32 values cannot overflow: it is finite exactly
	// when every value is (a non-finite difference makes y non-finite)
	if math.IsNaN(s) || math.IsInf(s, 0) {
		for i := range d {
			if x := d[i]; math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.err = fmt.Errorf("tensor %q: element %d: tuned − raw is not finite (tuned %v, raw %v)", tp.name, t.lo+int64(i), tv[i], rv[i])
				return
			}
		}
		t.err = fmt.Errorf("tensor %q: raw + (tuned − raw) is not finite", tp.name)
		return
	}
	t.sum = s
	t.inexact = inexact
	if inexact > 0 {
		t.rec = make([]byte, len(tb))
		rec := asF32(t.rec)
		for i := range rec {
			rec[i] = rv[i] + d[i]
		}
	}
	tp.releaseRaw(t.lo, t.hi)
}

// xor file header: magic, version, reserved.
var xorMagic = []byte("ALPWXOR\x00")

const xorVersion = 1

func xorHeader() []byte {
	h := make([]byte, 16)
	copy(h, xorMagic)
	binary.LittleEndian.PutUint32(h[8:], xorVersion)
	return h
}

var zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))

func makeXor(ctx context.Context, opt *MakeOptions, dir string, plans []*tplan, tuned Source, finish func(*tplan), progress func(int64), sum *Summary) error {
	out, err := xio.CreateRaw(filepath.Join(dir, XorName))
	if err != nil {
		return err
	}
	defer out.Abort()
	if _, err := out.Write(xorHeader()); err != nil {
		return err
	}
	off := int64(16)
	err = run(ctx, opt.Workers, plans, computeMakeXor, func(t *task) error {
		tp := t.tp
		es := int64(tp.aDT.Size())
		tb := tp.a[t.lo*es : t.hi*es]
		if t.first {
			tp.h = sha256.New()
			tp.mt.Offset = off
		}
		if len(t.out) > 0 {
			if _, err := out.Write(t.out); err != nil {
				return err
			}
			off += int64(len(t.out))
			tp.mt.Frames = append(tp.mt.Frames, int64(len(t.out)))
		}
		sum.Bytes += int64(len(t.out))
		tp.h.Write(tb)
		tuned.Release(tb)
		tp.sum += t.sum
		progress(int64(len(tb)))
		if t.last {
			finish(tp)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return out.Commit()
}

// shuffle splits elements of es bytes into es byte planes (all first bytes,
// then all second bytes...): the XOR of nearby floats has zero sign and
// exponent bytes, which zstd then compresses well.
func shuffle(b []byte, es int) []byte {
	if es == 1 {
		return b
	}
	n := len(b) / es
	out := make([]byte, len(b))
	switch es {
	case 2:
		p0, p1 := out[:n], out[n:2*n]
		for i := range p0 {
			v := binary.LittleEndian.Uint16(b[2*i:])
			p0[i], p1[i] = byte(v), byte(v>>8)
		}
		return out
	case 4:
		p0, p1, p2, p3 := out[:n], out[n:2*n], out[2*n:3*n], out[3*n:4*n]
		for i := range p0 {
			v := binary.LittleEndian.Uint32(b[4*i:])
			p0[i], p1[i], p2[i], p3[i] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
		return out
	}
	for k := 0; k < es; k++ {
		plane := out[k*n : (k+1)*n]
		for i := range plane {
			plane[i] = b[i*es+k]
		}
	}
	return out
}

// unshuffle inverts shuffle.
func unshuffle(b []byte, es int) []byte {
	if es == 1 {
		return b
	}
	n := len(b) / es
	out := make([]byte, len(b))
	switch es {
	case 2:
		p0, p1 := b[:n], b[n:2*n]
		for i := range p0 {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(p0[i])|uint16(p1[i])<<8)
		}
		return out
	case 4:
		p0, p1, p2, p3 := b[:n], b[n:2*n], b[2*n:3*n], b[3*n:4*n]
		for i := range p0 {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(p0[i])|uint32(p1[i])<<8|uint32(p2[i])<<16|uint32(p3[i])<<24)
		}
		return out
	}
	for k := 0; k < es; k++ {
		plane := b[k*n : (k+1)*n]
		for i, v := range plane {
			out[i*es+k] = v
		}
	}
	return out
}

func computeMakeXor(t *task) {
	tp := t.tp
	es := int64(tp.aDT.Size())
	tb := tp.a[t.lo*es : t.hi*es]
	if len(tb) == 0 {
		return
	}
	x := make([]byte, len(tb))
	copy(x, tb)
	if rb := tp.rawBytes(t.lo, t.hi); rb != nil {
		subtle.XORBytes(x[:len(rb)], x[:len(rb)], rb)
	}
	tp.releaseRaw(t.lo, t.hi)
	t.out = zenc.EncodeAll(shuffle(x, int(es)), make([]byte, 0, len(x)/2+64))
	if tp.aDT.IsFloat() {
		v := getF32(t.hi - t.lo)
		decodeInto(v, tp.aDT, tb)
		t.sum = sum64(v)
		putF32(v)
	}
}

package weightdiff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"unsafe"

	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/xio"
	"github.com/klauspost/compress/zstd"
)

// AlpacaSum is the check value the original weight_diff.py asserts for the
// recovered Alpaca-7B (sum of all parameters, atol 1e-2).
const AlpacaSum = 50637.1836

// RecoverOptions configure Recover.
type RecoverOptions struct {
	Options
	Raw, Diff, Out string
	// ExpectSum, when HaveExpect, is the original's naive check value.
	ExpectSum  float64
	HaveExpect bool
	SumTol     float64           // default 1e-2, the original's atol
	DType      safetensors.DType // output dtype; default: the tuned dtype from the manifest, else the diff's
}

func (o *RecoverOptions) tol() float64 {
	if o.SumTol <= 0 {
		return 1e-2
	}
	return o.SumTol
}

// CheckSum compares the recovered sums with an expected check value.
func CheckSum(s *Summary, want, tol float64) error {
	if math.Abs(s.Sum-want) <= tol || math.Abs(s.SumTorch-want) <= tol {
		return nil
	}
	return fmt.Errorf("naive integrity check failed: the parameters sum to %.4f (float32 torch-style %.4f), expected %.4f ± %g: wrong raw model or corrupted diff", s.Sum, s.SumTorch, want, tol)
}

// xorData is a memory-mapped diff.xor.
type xorData struct {
	path string
	b    []byte
}

func openXor(path string) (*xorData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < 16 {
		return nil, fmt.Errorf("%s: truncated (only %d bytes)", path, st.Size())
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	if !bytes.Equal(b[:8], xorMagic) {
		syscall.Munmap(b)
		return nil, fmt.Errorf("%s: not a weightdiff xor file (bad magic)", path)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != xorVersion {
		syscall.Munmap(b)
		return nil, fmt.Errorf("%s: xor format version %d is not supported (this weightdiff reads %d)", path, v, xorVersion)
	}
	return &xorData{path: path, b: b}, nil
}

func (x *xorData) Close() error { return syscall.Munmap(x.b) }

// prefetch starts reading the pages under b, a slice of the mapping.
func (x *xorData) prefetch(b []byte) {
	if len(b) == 0 {
		return
	}
	off := int(uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&x.b[0])))
	if off >= 0 && off+len(b) <= len(x.b) {
		safetensors.PrefetchMapped(x.b, off, len(b))
	}
}

// release drops the pages under b, a slice of the mapping.
func (x *xorData) release(b []byte) {
	if len(b) == 0 {
		return
	}
	off := int(uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&x.b[0])))
	if off >= 0 && off+len(b) <= len(x.b) {
		safetensors.ReleaseMapped(x.b, off, len(b))
	}
}

// frames slices a tensor's frames out of the file.
func (x *xorData) frames(t *ManifestTensor) ([][]byte, error) {
	off := t.Offset
	out := make([][]byte, len(t.Frames))
	for i, n := range t.Frames {
		if off < 16 || off+n > int64(len(x.b)) {
			return nil, fmt.Errorf("%s: tensor %q: frame %d lies beyond the end of the file (truncated file?)", x.path, t.Name, i)
		}
		out[i] = x.b[off : off+n : off+n]
		off += n
	}
	return out, nil
}

var zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<31))

// decodeFrame decompresses one xor frame that must hold exactly want
// bytes. The frame's declared content size is checked first (make writes
// it), so a small hostile frame cannot expand to gigabytes before the
// length check.
func decodeFrame(frame []byte, want int64) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(frame); err != nil {
		return nil, err
	}
	if h.HasFCS {
		if h.FrameContentSize != uint64(want) {
			return nil, fmt.Errorf("frame declares %d bytes, want %d", h.FrameContentSize, want)
		}
		return zdec.DecodeAll(frame, make([]byte, 0, want))
	}
	// No declared size (the encoder leaves it out of tiny frames):
	// stream it, reading at most want+1 bytes.
	d, err := zstd.NewReader(bytes.NewReader(frame), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(want)+1<<20))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	x, err := io.ReadAll(io.LimitReader(d, want+1))
	if err != nil {
		return nil, err
	}
	if int64(len(x)) > want {
		return nil, fmt.Errorf("frame holds more than %d bytes", want)
	}
	return x, nil
}

// Recover applies a diff to the raw model and writes the recovered model.
func Recover(ctx context.Context, opt RecoverOptions) (*Summary, error) {
	if opt.DType != "" && !opt.DType.IsFloat() {
		return nil, fmt.Errorf("output dtype %s is not a float type", opt.DType)
	}
	raw, _, err := OpenModel(opt.Raw)
	if err != nil {
		return nil, fmt.Errorf("raw model: %w", err)
	}
	defer raw.Close()
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
	man, err := ReadManifest(opt.Diff)
	if err != nil {
		return nil, err
	}
	mode := "diff"
	if man != nil {
		mode = man.Mode
	}
	if man == nil && !opt.HaveExpect {
		opt.logf("note: %s has no %s and no --expect-sum was given: the result is not checked", opt.Diff, ManifestName)
	}
	var diff Source
	var xd *xorData
	var names []string
	if mode == "diff" {
		diff, _, err = OpenModel(opt.Diff)
		if err != nil {
			return nil, fmt.Errorf("diff: %w", err)
		}
		defer diff.Close()
		names = diff.Names()
		if man != nil {
			var mnames []string
			for _, t := range man.Tensors {
				mnames = append(mnames, t.Name)
			}
			if err := compareNames(names, mnames, "diff weights", "manifest"); err != nil {
				return nil, err
			}
		}
	} else {
		if opt.DType != "" {
			return nil, fmt.Errorf("--dtype does not apply to an xor diff (it recovers the tuned bytes exactly)")
		}
		xd, err = openXor(filepath.Join(opt.Diff, XorName))
		if err != nil {
			return nil, err
		}
		defer xd.Close()
		for _, t := range man.Tensors {
			names = append(names, t.Name)
		}
	}
	sort.Strings(names)
	want := map[string][]int64{}
	for _, n := range names {
		if man != nil {
			want[n] = man.tensor(n).Shape
		} else if ti, ok := diff.Info(n); ok {
			want[n] = ti.Shape
		}
	}
	var rawSrc Source = raw
	if s, added := withRotaryBuffers(raw, want, opt.Diff, opt.Raw); len(added) > 0 {
		rawSrc = s
		opt.logf("note: the raw model has no %s buffers (newer conversion); computed %d of them (1/theta^(2i/d), float32)", invFreqSuffix, len(added))
	}
	if err := compareNames(rawSrc.Names(), names, "raw model", "diff"); err != nil {
		return nil, err
	}
	var plans []*tplan
	var outInfos []safetensors.TensorInfo
	var total int64
	padRows := int64(-1)
	for _, name := range names {
		ri, _ := rawSrc.Info(name)
		var ti safetensors.TensorInfo
		var mt *ManifestTensor
		if man != nil {
			mt = man.tensor(name)
			ti = mt.Info()
		} else {
			ti, _ = diff.Info(name)
		}
		ti.Name = name
		added, err := matchShapes(name, ri, ti)
		if err != nil {
			return nil, err
		}
		if added == 0 && man != nil && man.PadRows > 0 && isEmbedding(name) {
			for _, r := range man.Resized {
				if r == name {
					return nil, fmt.Errorf("tensor %q: the diff expects a raw model with %d row(s) fewer (Alpaca's pad-token resize), but the raw one already has shape %v: is --raw the base model?", name, man.PadRows, ri.Shape)
				}
			}
		}
		if added > 0 {
			if padRows >= 0 && padRows != added {
				return nil, fmt.Errorf("tensor %q: the diff has %d more rows than the raw model, other embeddings %d", name, added, padRows)
			}
			padRows = added
			if man != nil && man.PadRows != added {
				return nil, fmt.Errorf("tensor %q: the diff expects %d pad row(s) added to the raw model, but it has %d rows fewer than the diff (wrong raw model?)", name, man.PadRows, added)
			}
		}
		r, err := rawSrc.Bytes(name)
		if err != nil {
			return nil, err
		}
		tp := &tplan{name: name, n: ti.NumElements(), mt: mt, r: r, rDT: ri.DType, rawElems: ri.NumElements(), rawRel: raw.Release}
		if len(ti.Shape) == 2 {
			tp.cols = ti.Shape[1]
		}
		if mode == "diff" {
			di, _ := diff.Info(name)
			if !eqShape(di.Shape, ti.Shape) {
				return nil, fmt.Errorf("tensor %q: the diff has shape %v, the manifest %v", name, di.Shape, ti.Shape)
			}
			if !di.DType.IsFloat() || !ri.DType.IsFloat() {
				return nil, fmt.Errorf("tensor %q: dtype %s (raw %s) is not a float type", name, di.DType, ri.DType)
			}
			if tp.a, err = diff.Bytes(name); err != nil {
				return nil, err
			}
			tp.aRel = diff.Release
			tp.prefetch = []func([]byte){prefetcher(raw), prefetcher(diff)}
			tp.aDT = di.DType
			tp.outDT = ti.DType
			if opt.DType != "" {
				tp.outDT = opt.DType
			}
			tp.chunk = max(1, opt.chunkBytes()/4)
			if added > 0 {
				if tp.mean, err = meanRow(rawSrc, name, ri); err != nil {
					return nil, err
				}
			}
		} else {
			if ri.DType != ti.DType {
				return nil, fmt.Errorf("tensor %q: dtype mismatch: raw %s, diff made from %s", name, ri.DType, ti.DType)
			}
			tp.aDT, tp.outDT = ti.DType, ti.DType
			tp.chunk = man.ChunkBytes / int64(ti.DType.Size())
			if tp.frames, err = xd.frames(mt); err != nil {
				return nil, err
			}
			tp.aRel = xd.release
			tp.prefetch = []func([]byte){prefetcher(raw), xd.prefetch}
		}
		tp.recDT = tp.outDT
		outInfos = append(outInfos, safetensors.TensorInfo{Name: name, DType: tp.outDT, Shape: ti.Shape})
		total += ti.NumElements() * int64(tp.outDT.Size())
		plans = append(plans, tp)
	}
	if padRows > 0 {
		opt.logf("pad-token resize: %d row(s) added to the raw embeddings (Alpaca's mean-row init)", padRows)
	}

	sum := &Summary{Tensors: len(plans)}
	sums := map[string]float64{}
	mw := newModelWriter(od.Path, outInfos, opt.ShardBytes, map[string]string{"format": "pt"})
	defer mw.abort()
	var done int64
	compute := computeRecoverDiff
	if mode == "xor" {
		compute = computeRecoverXor
	}
	err = run(ctx, opt.Workers, plans, compute, func(t *task) error {
		tp := t.tp
		if t.first {
			tp.h = sha256.New()
			if err := mw.begin(tp.name); err != nil {
				return err
			}
		}
		if err := mw.write(t.out); err != nil {
			return err
		}
		tp.h.Write(t.out)
		tp.sum += t.sum
		sum.Bytes += int64(len(t.out))
		done += int64(len(t.out))
		if opt.Progress != nil {
			opt.Progress(done, total)
		}
		if !t.last {
			return nil
		}
		sums[tp.name] = tp.sum
		sum.Sum += tp.sum
		sum.Params += tp.n
		if tp.mt != nil && tp.outDT == safetensors.DType(tp.mt.DType) {
			got := hex.EncodeToString(tp.h.Sum(nil))
			want := tp.mt.SHA256
			if tp.mt.RecoveredSHA256 != "" {
				want = tp.mt.RecoveredSHA256
			}
			if got != want {
				return fmt.Errorf("tensor %q: the recovered bytes do not match the manifest's SHA-256 (wrong raw model, or a corrupted diff)", tp.name)
			}
			sum.Checked++
			sum.Inexact += tp.mt.Inexact
		}
		return mw.endTensor()
	})
	if err == nil {
		err = mw.finish()
	}
	if err != nil {
		return nil, err
	}
	sum.SumTorch = torchSum(names, sums)
	if opt.HaveExpect {
		if err := CheckSum(sum, opt.ExpectSum, opt.tol()); err != nil {
			return nil, err
		}
	} else if man != nil {
		if err := CheckSum(sum, man.Sum, opt.tol()); err != nil {
			return nil, err
		}
	}
	if sum.Files, err = copyAux(od.Path, opt.Diff, opt.Raw); err != nil {
		return nil, err
	}
	if opt.DType != "" {
		if err := setConfigDType(filepath.Join(od.Path, "config.json"), opt.DType); err != nil {
			return nil, err
		}
	}
	if err := od.commit(); err != nil {
		return nil, err
	}
	ok = true
	return sum, nil
}

func setConfigDType(path string, dt safetensors.DType) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil // no config to update
	}
	nb, err := jsonl.SetString(b, "torch_dtype", dt.TorchName())
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return xio.AtomicWriteFile(path, nb)
}

func computeRecoverDiff(t *task) {
	tp := t.tp
	n := t.hi - t.lo
	if n == 0 {
		t.out = []byte{}
		return
	}
	des := int64(tp.aDT.Size())
	db := tp.a[t.lo*des : t.hi*des]
	if littleEndian && tp.aDT == safetensors.F32 && tp.rDT == safetensors.F32 && tp.outDT == safetensors.F32 && t.hi <= tp.rawElems {
		// the common float32 case in one pass, without conversions
		t.out = make([]byte, 4*n)
		out := asF32(t.out)
		d := asF32(db)
		r := asF32(tp.r[4*t.lo : 4*t.hi])
		var s float64
		for i := range out {
			v := d[i] + r[i]
			out[i] = v
			s += float64(v)
		}
		// a float64 sum of float32 values cannot overflow: it is finite
		// exactly when every value is
		if math.IsNaN(s) || math.IsInf(s, 0) {
			i := firstNonFinite(out)
			t.err = fmt.Errorf("tensor %q: element %d of the recovered tensor is %v (raw %v + diff %v)", tp.name, t.lo+int64(i), out[i], r[i], d[i])
			return
		}
		t.sum = s
		tp.releaseRaw(t.lo, t.hi)
		if tp.aRel != nil {
			tp.aRel(db)
		}
		return
	}
	dv := getF32(n)
	rv := getF32(n)
	defer putF32(dv)
	defer putF32(rv)
	decodeInto(dv, tp.aDT, db)
	tp.rawChunk(rv, t.lo, t.hi)
	for i := range dv {
		dv[i] += rv[i]
	}
	if i := firstNonFinite(dv); i >= 0 {
		t.err = fmt.Errorf("tensor %q: element %d of the recovered tensor is %v (raw %v + diff %v)", tp.name, t.lo+int64(i), dv[i], rv[i], dv[i]-rv[i])
		return
	}
	t.sum = sum64(dv)
	t.out = make([]byte, n*int64(tp.outDT.Size()))
	encodeInto(t.out, tp.outDT, dv)
	tp.releaseRaw(t.lo, t.hi)
	if tp.aRel != nil {
		tp.aRel(db)
	}
}

func computeRecoverXor(t *task) {
	tp := t.tp
	es := int64(tp.outDT.Size())
	want := (t.hi - t.lo) * es
	if want == 0 {
		t.out = []byte{}
		return
	}
	if t.idx >= len(tp.frames) {
		t.err = fmt.Errorf("tensor %q: frame %d is missing", tp.name, t.idx)
		return
	}
	x, err := decodeFrame(tp.frames[t.idx], want)
	if err != nil {
		t.err = fmt.Errorf("tensor %q: frame %d: %v (corrupted diff?)", tp.name, t.idx, err)
		return
	}
	if int64(len(x)) != want {
		t.err = fmt.Errorf("tensor %q: frame %d holds %d bytes, want %d (corrupted diff?)", tp.name, t.idx, len(x), want)
		return
	}
	x = unshuffle(x, int(es))
	if rb := tp.rawBytes(t.lo, t.hi); rb != nil {
		subtle.XORBytes(x[:len(rb)], x[:len(rb)], rb)
	}
	tp.releaseRaw(t.lo, t.hi)
	if tp.aRel != nil {
		tp.aRel(tp.frames[t.idx])
	}
	t.out = x
	if tp.outDT.IsFloat() {
		v := getF32(t.hi - t.lo)
		decodeInto(v, tp.outDT, x)
		t.sum = sum64(v)
		putF32(v)
	}
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	Options
	Model      string
	Manifest   *Manifest // may be nil when HaveExpect
	ExpectSum  float64
	HaveExpect bool
	SumTol     float64
}

// Verify checks a model against a diff's manifest (per-tensor SHA-256 and
// the sum) and/or an expected check value.
func Verify(ctx context.Context, opt VerifyOptions) (*Summary, error) {
	src, _, err := OpenModel(opt.Model)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	names := src.Names()
	sort.Strings(names)
	if opt.Manifest != nil {
		var mnames []string
		for _, t := range opt.Manifest.Tensors {
			mnames = append(mnames, t.Name)
		}
		if err := compareNames(names, mnames, "model", "manifest"); err != nil {
			return nil, err
		}
	}
	var plans []*tplan
	var total int64
	for _, name := range names {
		ti, _ := src.Info(name)
		b, err := src.Bytes(name)
		if err != nil {
			return nil, err
		}
		tp := &tplan{name: name, n: ti.NumElements(), a: b, aDT: ti.DType, outDT: ti.DType, chunk: max(1, opt.chunkBytes()/int64(ti.DType.Size()))}
		if opt.Manifest != nil {
			tp.mt = opt.Manifest.tensor(name)
			if tp.mt.DType != string(ti.DType) || !eqShape(tp.mt.Shape, ti.Shape) {
				return nil, fmt.Errorf("tensor %q: %s %v, the manifest says %s %v", name, ti.DType, ti.Shape, tp.mt.DType, tp.mt.Shape)
			}
		}
		total += ti.NumBytes()
		plans = append(plans, tp)
	}
	sum := &Summary{Tensors: len(plans)}
	sums := map[string]float64{}
	var done int64
	err = run(ctx, opt.Workers, plans, func(t *task) {
		tp := t.tp
		if tp.aDT.IsFloat() && t.hi > t.lo {
			v := getF32(t.hi - t.lo)
			es := int64(tp.aDT.Size())
			decodeInto(v, tp.aDT, tp.a[t.lo*es:t.hi*es])
			t.sum = sum64(v)
			putF32(v)
		}
	}, func(t *task) error {
		tp := t.tp
		es := int64(tp.aDT.Size())
		b := tp.a[t.lo*es : t.hi*es]
		if t.first {
			tp.h = sha256.New()
		}
		tp.h.Write(b)
		src.Release(b)
		tp.sum += t.sum
		done += int64(len(b))
		if opt.Progress != nil {
			opt.Progress(done, total)
		}
		if !t.last {
			return nil
		}
		sums[tp.name] = tp.sum
		sum.Sum += tp.sum
		sum.Params += tp.n
		if tp.mt != nil {
			got := hex.EncodeToString(tp.h.Sum(nil))
			switch got {
			case tp.mt.SHA256:
			case tp.mt.RecoveredSHA256:
				sum.Inexact += tp.mt.Inexact
			default:
				return fmt.Errorf("tensor %q: SHA-256 %s matches neither the tuned tensor nor its expected recovery", tp.name, got[:16])
			}
			sum.Checked++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sum.SumTorch = torchSum(names, sums)
	tol := opt.SumTol
	if tol <= 0 {
		tol = 1e-2
	}
	if opt.HaveExpect {
		return sum, CheckSum(sum, opt.ExpectSum, tol)
	}
	if opt.Manifest != nil {
		return sum, CheckSum(sum, opt.Manifest.Sum, tol)
	}
	return sum, nil
}

// Package cuda is the CUDA implementation of backend.Backend. The kernels
// and the cuBLAS calls are CUDA C++ under csrc/, built by `make cuda` (nvcc)
// into libalpaca_cuda.so with a small C API (csrc/alpaca_cuda.h). This
// package loads that library at run time with dlopen (cgo is used for
// dlopen/dlsym only: no CUDA header or library is needed to build Go
// programs), the way ollama loads its GPU backends. It registers the
// backend "cuda"; `trainer --device cuda` opens it.
//
// The library is looked for, in order: the path given to SetLibraryPath
// (trainer --cuda-lib), $ALPACA_CUDA_LIB, libalpaca_cuda.so beside the
// executable, then the dynamic loader's search path. Without it, Open fails
// with one line saying how to build it. Built without cgo (CGO_ENABLED=0),
// the package still compiles and registers "cuda", and Open says that the
// binary needs cgo.
//
// Errors inside an operation (a CUDA error, a kernel fault) panic with an
// *Error holding the library's message (the trainer turns it into its
// one-line error): the Backend interface has no error returns, and after
// a CUDA error the device context is unusable anyway. Shapes are checked
// here before anything is queued, so a wrong call panics like the CPU
// backend's instead of faulting on the device.
package cuda

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/x448/float16"
)

// LibName is the file name of the CUDA library.
const LibName = "libalpaca_cuda.so"

// EnvLib names the environment variable holding the library's path.
const EnvLib = "ALPACA_CUDA_LIB"

// Options read from the environment at Open (the backend.Options of the
// registry carry no backend-specific fields):
//
//	ALPACA_CUDA_TF32=1       F32 MatMul may use TF32 tensor cores (10-bit mantissa inputs)
//	ALPACA_CUDA_BF16_GEMM=1  MatMul rounds its inputs to bf16 (fp32 accumulation): the fast path
const (
	EnvTF32     = "ALPACA_CUDA_TF32"
	EnvBF16GEMM = "ALPACA_CUDA_BF16_GEMM"
)

func init() {
	backend.Register("cuda", func(o backend.Options) (backend.Backend, error) { return Open(o.Device) })
}

var (
	mu      sync.Mutex
	libPath string
	opened  *CUDA
)

// SetLibraryPath sets the library file Open loads (trainer --cuda-lib);
// "" restores the search.
func SetLibraryPath(p string) {
	mu.Lock()
	libPath = p
	mu.Unlock()
}

// candidates lists where the library is looked for, in order.
func candidates() []string {
	var c []string
	if libPath != "" {
		return []string{libPath}
	}
	if p := os.Getenv(EnvLib); p != "" {
		return []string{p}
	}
	if exe, err := os.Executable(); err == nil {
		c = append(c, filepath.Join(filepath.Dir(exe), LibName))
	}
	return append(c, LibName) // the dynamic loader's search path
}

// ErrNoLibrary is wrapped by Open's error when no library file was found.
var ErrNoLibrary = errors.New("CUDA library not found")

// CUDA implements backend.Backend on one GPU.
type CUDA struct {
	l      api
	dev    int
	flags  int
	name   string
	allocs map[uint64]uint64 // live allocations: pointer -> bytes
	amu    sync.Mutex
}

var _ backend.Backend = (*CUDA)(nil)

// Open loads the library and opens device dev. The library holds one
// device context per process: a second Open returns the same backend
// (and fails for another device).
func Open(dev int) (*CUDA, error) {
	mu.Lock()
	defer mu.Unlock()
	if opened != nil {
		if opened.dev != dev {
			return nil, fmt.Errorf("cuda: device %d is open; one device per process", opened.dev)
		}
		return opened, nil
	}
	if !cgoLoaderAvailable {
		_, err := loadLib("")
		return nil, fmt.Errorf("cuda: %v", err)
	}
	var l api
	var errs []string
	found := false
	for _, p := range candidates() {
		if strings.ContainsRune(p, '/') {
			if _, err := os.Stat(p); err != nil {
				errs = append(errs, p+": not found")
				continue
			}
		}
		var err error
		if l, err = loadLib(p); err == nil {
			found = true
			break
		}
		errs = append(errs, err.Error())
	}
	if !found {
		return nil, fmt.Errorf("cuda: %w (%s); build it with `make cuda` (needs nvcc) and put %s beside the binary, or pass --cuda-lib FILE / set %s", ErrNoLibrary, strings.Join(errs, "; "), LibName, EnvLib)
	}
	flags := 0
	if os.Getenv(EnvTF32) == "1" {
		flags |= 1
	}
	if os.Getenv(EnvBF16GEMM) == "1" {
		flags |= 2
	}
	if rc := l.init(dev, flags); rc != 0 {
		return nil, fmt.Errorf("cuda: %s", l.lastError())
	}
	name, ma, mi, rc := l.deviceInfo()
	if rc != 0 {
		return nil, fmt.Errorf("cuda: %s", l.lastError())
	}
	c := &CUDA{l: l, dev: dev, flags: flags, allocs: map[uint64]uint64{}}
	c.name = fmt.Sprintf("cuda (%s, sm_%d%d, cuBLAS", name, ma, mi)
	switch {
	case flags&2 != 0:
		c.name += " bf16 GEMM"
	case flags&1 != 0:
		c.name += " tf32"
	default:
		c.name += " fp32"
	}
	c.name += ")"
	opened = c
	return c, nil
}

// Name says which device and matmul path runs.
func (c *CUDA) Name() string { return c.name }

// MemInfo reports the device's free and total memory (cudaMemGetInfo).
func (c *CUDA) MemInfo() (free, total uint64, err error) {
	f, t, rc := c.l.memInfo()
	if rc != 0 {
		return 0, 0, fmt.Errorf("cuda: %s", c.l.lastError())
	}
	return f, t, nil
}

// Sync waits for all queued work (for timing).
func (c *CUDA) Sync() { c.check(c.l.sync()) }

// Error is the panic value of a failed operation (the library's message).
type Error struct{ Msg string }

func (e *Error) Error() string { return "cuda: " + e.Msg }

func (c *CUDA) check(rc int) {
	if rc != 0 {
		panic(&Error{Msg: c.l.lastError()})
	}
}

// dmem is the storage of a device allocation.
type dmem struct {
	ptr   uint64
	bytes uint64
}

func (c *CUDA) mem(b backend.Buffer) *dmem {
	s, ok := b.Storage().(*dmem)
	if !ok {
		panic(fmt.Sprintf("cuda: buffer of %T is not a CUDA buffer", b.Storage()))
	}
	return s
}

// ptr is the device address of b's first element.
func (c *CUDA) ptr(b backend.Buffer) uint64 {
	return c.mem(b).ptr + uint64(b.Offset()*b.DType().Size())
}

func (c *CUDA) f32(what string, bs ...backend.Buffer) {
	for _, b := range bs {
		if b.DType() != backend.F32 {
			panic(fmt.Sprintf("cuda: %s: %v buffer, want f32", what, b.DType()))
		}
	}
}

func (c *CUDA) i32(what string, bs ...backend.Buffer) {
	for _, b := range bs {
		if b.DType() != backend.I32 {
			panic(fmt.Sprintf("cuda: %s: %v buffer, want i32", what, b.DType()))
		}
	}
}

func atLeast(what string, b backend.Buffer, n int) {
	if b.Len() < n {
		panic(fmt.Sprintf("cuda: %s: buffer of %d elements, need %d", what, b.Len(), n))
	}
}

func sameLen(what string, n int, bs ...backend.Buffer) {
	for _, b := range bs {
		if b.Len() != n {
			panic(fmt.Sprintf("cuda: %s: buffers of %d and %d elements", what, n, b.Len()))
		}
	}
}

// Alloc returns a zeroed device buffer.
func (c *CUDA) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	if n < 0 || dt.Size() == 0 {
		return backend.Buffer{}, fmt.Errorf("cuda: alloc of %d elements of %v", n, dt)
	}
	bytes := uint64(n) * uint64(dt.Size())
	p, rc := c.l.alloc(bytes)
	if rc != 0 {
		return backend.Buffer{}, fmt.Errorf("cuda: %s", c.l.lastError())
	}
	c.amu.Lock()
	c.allocs[p] = bytes
	c.amu.Unlock()
	return backend.NewBuffer(&dmem{ptr: p, bytes: bytes}, dt, 0, n), nil
}

// Free releases a buffer made by Alloc (the whole block).
func (c *CUDA) Free(b backend.Buffer) {
	if b.IsNil() {
		return
	}
	m := c.mem(b)
	c.amu.Lock()
	_, live := c.allocs[m.ptr]
	delete(c.allocs, m.ptr)
	c.amu.Unlock()
	if !live {
		return // freed twice: ignore, like the CPU backend
	}
	c.check(c.l.free(m.ptr))
}

// Allocated is the number of bytes in live allocations.
func (c *CUDA) Allocated() uint64 {
	c.amu.Lock()
	defer c.amu.Unlock()
	var t uint64
	for _, b := range c.allocs {
		t += b
	}
	return t
}

func (c *CUDA) uploadBytes(dst backend.Buffer, p unsafe.Pointer, bytes int) {
	if bytes == 0 {
		return
	}
	c.check(c.l.upload(c.ptr(dst), p, uint64(bytes)))
}

// Upload copies src into dst, converting on the host (bf16: round to
// nearest even, like the CPU backend).
func (c *CUDA) Upload(dst backend.Buffer, src []float32) {
	sameLen("upload", len(src), dst)
	if len(src) == 0 {
		return
	}
	switch dst.DType() {
	case backend.F32:
		c.uploadBytes(dst, unsafe.Pointer(&src[0]), 4*len(src))
	case backend.BF16, backend.F16:
		h := make([]uint16, len(src))
		if dst.DType() == backend.BF16 {
			for i, x := range src {
				h[i] = toBF16(x)
			}
		} else {
			for i, x := range src {
				h[i] = float16.Fromfloat32(x).Bits()
			}
		}
		c.uploadBytes(dst, unsafe.Pointer(&h[0]), 2*len(h))
	default:
		panic("cuda: upload of float32 into " + dst.DType().String())
	}
}

// UploadInt32 copies src into an I32 buffer.
func (c *CUDA) UploadInt32(dst backend.Buffer, src []int32) {
	c.i32("upload", dst)
	sameLen("upload", len(src), dst)
	if len(src) > 0 {
		c.uploadBytes(dst, unsafe.Pointer(&src[0]), 4*len(src))
	}
}

// UploadRaw copies little-endian elements of dst's dtype (the device is
// little-endian, as is every host Go runs CUDA on).
func (c *CUDA) UploadRaw(dst backend.Buffer, src []byte) {
	if len(src) != dst.Len()*dst.DType().Size() {
		panic(fmt.Sprintf("cuda: raw upload of %d bytes into %d elements of %v", len(src), dst.Len(), dst.DType()))
	}
	if len(src) > 0 {
		c.uploadBytes(dst, unsafe.Pointer(&src[0]), len(src))
	}
}

// Download copies src into dst as float32.
func (c *CUDA) Download(dst []float32, src backend.Buffer) {
	sameLen("download", len(dst), src)
	if len(dst) == 0 {
		return
	}
	switch src.DType() {
	case backend.F32:
		c.check(c.l.download(unsafe.Pointer(&dst[0]), c.ptr(src), uint64(4*len(dst))))
	case backend.BF16, backend.F16:
		h := make([]uint16, len(dst))
		c.check(c.l.download(unsafe.Pointer(&h[0]), c.ptr(src), uint64(2*len(h))))
		if src.DType() == backend.BF16 {
			for i, v := range h {
				dst[i] = math.Float32frombits(uint32(v) << 16)
			}
		} else {
			for i, v := range h {
				dst[i] = float16.Frombits(v).Float32()
			}
		}
	default:
		panic("cuda: download of " + src.DType().String() + " as float32")
	}
}

// DownloadInt32 copies an I32 buffer to the host (for tests).
func (c *CUDA) DownloadInt32(dst []int32, src backend.Buffer) {
	c.i32("download", src)
	sameLen("download", len(dst), src)
	if len(dst) > 0 {
		c.check(c.l.download(unsafe.Pointer(&dst[0]), c.ptr(src), uint64(4*len(dst))))
	}
}

// toBF16 rounds to nearest even (torch's rule); NaN stays NaN.
func toBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if f != f {
		return uint16(bits>>16) | 0x40
	}
	return uint16((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16)
}

// Zero sets x to zero.
func (c *CUDA) Zero(x backend.Buffer) {
	c.check(c.l.zero(c.ptr(x), uint64(x.Len()*x.DType().Size())))
}

// Copy: dst = src.
func (c *CUDA) Copy(dst, src backend.Buffer) {
	c.f32("copy", dst, src)
	sameLen("copy", dst.Len(), src)
	c.check(c.l.copy(c.ptr(dst), c.ptr(src), int64(dst.Len())))
}

// Add: dst += src.
func (c *CUDA) Add(dst, src backend.Buffer) {
	c.f32("add", dst, src)
	sameLen("add", dst.Len(), src)
	c.check(c.l.add(c.ptr(dst), c.ptr(src), int64(dst.Len())))
}

// Scale: x *= s.
// Mul: dst = a ⊙ b elementwise (LoRA's dropout mask).
func (c *CUDA) Mul(dst, a, b backend.Buffer) {
	c.f32("mul", dst, a, b)
	sameLen("mul", dst.Len(), a, b)
	c.check(c.l.mul(c.ptr(dst), c.ptr(a), c.ptr(b), int64(dst.Len())))
}

func (c *CUDA) Scale(x backend.Buffer, s float32) {
	c.f32("scale", x)
	c.check(c.l.scale(c.ptr(x), int64(x.Len()), s))
}

func spanArrays(x backend.Buffer, spans []backend.Span) (off, ln []int64, decay []int32) {
	off, ln, decay = make([]int64, len(spans)), make([]int64, len(spans)), make([]int32, len(spans))
	for i, s := range spans {
		if s.Off < 0 || s.Len < 0 || s.Off+s.Len > x.Len() {
			panic(fmt.Sprintf("cuda: span [%d,+%d) outside a buffer of %d", s.Off, s.Len, x.Len()))
		}
		off[i], ln[i] = int64(s.Off), int64(s.Len)
		if s.Decay {
			decay[i] = 1
		}
	}
	return
}

// SumSquares: per span a double sum (fixed reduction tree), spans added in
// order on the host.
func (c *CUDA) SumSquares(x backend.Buffer, spans []backend.Span) float64 {
	c.f32("sum of squares", x)
	off, ln, _ := spanArrays(x, spans)
	s, rc := c.l.sumSquares(c.ptr(x), off, ln)
	c.check(rc)
	return s
}

// AdamW: the CPU backend's arithmetic, bit for bit (see csrc/core.cu).
func (c *CUDA) AdamW(w, g, m, v backend.Buffer, spans []backend.Span, p backend.AdamW) {
	c.f32("adamw", w, g, m, v)
	sameLen("adamw", w.Len(), g, m, v)
	off, ln, decay := spanArrays(w, spans)
	t := float64(p.Step)
	bc1 := 1 - math.Pow(p.Beta1, t)
	bc2 := 1 - math.Pow(p.Beta2, t)
	k := [8]float32{
		float32(p.LR / bc1), float32(math.Sqrt(bc2)), float32(p.Beta1), float32(p.Beta2),
		float32(1 - p.Beta1), float32(1 - p.Beta2), float32(p.Eps), float32(1 - p.LR*p.WeightDecay),
	}
	c.check(c.l.adamw(c.ptr(w), c.ptr(g), c.ptr(m), c.ptr(v), off, ln, decay, k, p.WeightDecay != 0))
}

// Embedding: out[i] = table[tokens[i]]; table F32, BF16 or F16.
func (c *CUDA) Embedding(out, table, tokens backend.Buffer, dim int) {
	c.f32("embedding", out)
	c.i32("embedding", tokens)
	n := tokens.Len()
	atLeast("embedding", out, n*dim)
	c.check(c.l.embedding(c.ptr(out), c.ptr(table), int(table.DType()), c.ptr(tokens), int64(n), int64(dim)))
}

// EmbeddingBackward: dtable[tokens[i]] += dout[i] in position order.
func (c *CUDA) EmbeddingBackward(dtable, dout, tokens backend.Buffer, dim int) {
	c.f32("embedding backward", dtable, dout)
	c.i32("embedding backward", tokens)
	n := tokens.Len()
	atLeast("embedding backward", dout, n*dim)
	c.check(c.l.embeddingBackward(c.ptr(dtable), c.ptr(dout), c.ptr(tokens), int64(n), int64(dim)))
}

// GatherRows: dst[r] = src[rows[r]].
func (c *CUDA) GatherRows(dst, src, rows backend.Buffer, dim int) {
	c.f32("gather rows", dst, src)
	c.i32("gather rows", rows)
	atLeast("gather rows", dst, rows.Len()*dim)
	c.check(c.l.gatherRows(c.ptr(dst), c.ptr(src), c.ptr(rows), int64(rows.Len()), int64(dim)))
}

// ScatterRows: dst[rows[r]] = src[r].
func (c *CUDA) ScatterRows(dst, src, rows backend.Buffer, dim int) {
	c.f32("scatter rows", dst, src)
	c.i32("scatter rows", rows)
	atLeast("scatter rows", src, rows.Len()*dim)
	c.check(c.l.scatterRows(c.ptr(dst), c.ptr(src), c.ptr(rows), int64(rows.Len()), int64(dim)))
}

// MatMul: C = alpha*op(A)*op(B) + beta*C (row-major) through cuBLAS.
func (c *CUDA) MatMul(transA, transB bool, m, n, k int, alpha float32, a backend.Buffer, lda int, b backend.Buffer, ldb int, beta float32, cc backend.Buffer, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	c.f32("matmul", a, cc)
	if !b.DType().IsFloat() {
		panic("cuda: matmul: B of " + b.DType().String())
	}
	if e := backend.GemmShapeError(transA, transB, m, n, k, a.Len(), lda, b.Len(), ldb, cc.Len(), ldc); e != "" {
		panic("cuda: matmul: " + e)
	}
	c.check(c.l.matmul(transA, transB, int64(m), int64(n), int64(k), alpha, c.ptr(a), int64(lda), c.ptr(b), int(b.DType()), int64(ldb), beta, c.ptr(cc), int64(ldc)))
}

// RMSNorm: see backend.Backend.
func (c *CUDA) RMSNorm(y, rstd, x, w backend.Buffer, rows, dim int, eps float32) {
	c.f32("rmsnorm", y, rstd, x, w)
	atLeast("rmsnorm", x, rows*dim)
	atLeast("rmsnorm", y, rows*dim)
	atLeast("rmsnorm", rstd, rows)
	atLeast("rmsnorm", w, dim)
	c.check(c.l.rmsnorm(c.ptr(y), c.ptr(rstd), c.ptr(x), c.ptr(w), int64(rows), int64(dim), eps))
}

// RMSNormBackward: dx += dL/dx, dw += dL/dw.
func (c *CUDA) RMSNormBackward(dx, dw, dy, x, w, rstd backend.Buffer, rows, dim int) {
	c.f32("rmsnorm backward", dx, dw, dy, x, w, rstd)
	for _, b := range []backend.Buffer{dx, dy, x} {
		atLeast("rmsnorm backward", b, rows*dim)
	}
	atLeast("rmsnorm backward", rstd, rows)
	c.check(c.l.rmsnormBackward(c.ptr(dx), c.ptr(dw), c.ptr(dy), c.ptr(x), c.ptr(w), c.ptr(rstd), int64(rows), int64(dim)))
}

// RoPE: see backend.Backend.
func (c *CUDA) RoPE(x, pos backend.Buffer, rows, heads, headDim int, cos, sin backend.Buffer, inverse bool) {
	c.f32("rope", x, cos, sin)
	c.i32("rope", pos)
	atLeast("rope", x, rows*heads*headDim)
	atLeast("rope", pos, rows)
	c.check(c.l.rope(c.ptr(x), c.ptr(pos), int64(rows), int64(heads), int64(headDim), c.ptr(cos), c.ptr(sin), inverse))
}

func attnArgs(what string, s backend.AttnShape, q, kv, lse, seg backend.Buffer) [5]int64 {
	N := s.B * s.T
	if s.NKV <= 0 || s.NH%s.NKV != 0 {
		panic(fmt.Sprintf("cuda: %s: %d heads over %d kv heads", what, s.NH, s.NKV))
	}
	atLeast(what, q, N*s.NH*s.HD)
	atLeast(what, kv, N*s.NKV*s.HD)
	atLeast(what, lse, N*s.NH)
	atLeast(what, seg, N)
	return [5]int64{int64(s.B), int64(s.T), int64(s.NH), int64(s.NKV), int64(s.HD)}
}

// Attention: flash-style causal attention over packed rows.
func (c *CUDA) Attention(out, lse, q, k, v, seg backend.Buffer, s backend.AttnShape) {
	c.f32("attention", out, lse, q, k, v)
	c.i32("attention", seg)
	a := attnArgs("attention", s, q, k, lse, seg)
	atLeast("attention", out, s.B*s.T*s.NH*s.HD)
	atLeast("attention", v, s.B*s.T*s.NKV*s.HD)
	c.check(c.l.attention(c.ptr(out), c.ptr(lse), c.ptr(q), c.ptr(k), c.ptr(v), c.ptr(seg), a))
}

// AttentionBackward writes dq, dk, dv.
func (c *CUDA) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, seg backend.Buffer, s backend.AttnShape) {
	c.f32("attention backward", dq, dk, dv, dout, out, lse, q, k, v)
	c.i32("attention backward", seg)
	a := attnArgs("attention backward", s, q, k, lse, seg)
	for _, b := range []backend.Buffer{dq, dout, out} {
		atLeast("attention backward", b, s.B*s.T*s.NH*s.HD)
	}
	for _, b := range []backend.Buffer{dk, dv, v} {
		atLeast("attention backward", b, s.B*s.T*s.NKV*s.HD)
	}
	c.check(c.l.attentionBackward(c.ptr(dq), c.ptr(dk), c.ptr(dv), c.ptr(dout), c.ptr(out), c.ptr(lse), c.ptr(q), c.ptr(k), c.ptr(v), c.ptr(seg), a))
}

// AttentionCached: n new queries at positions past.. against the cache.
func (c *CUDA) AttentionCached(out, q, k, v backend.Buffer, past, n, NH, NKV, HD int) {
	c.f32("cached attention", out, q, k, v)
	if NKV <= 0 || NH%NKV != 0 || past < 0 {
		panic(fmt.Sprintf("cuda: cached attention: %d heads over %d kv heads, past %d", NH, NKV, past))
	}
	atLeast("cached attention", q, n*NH*HD)
	atLeast("cached attention", out, n*NH*HD)
	atLeast("cached attention", k, (past+n)*NKV*HD)
	atLeast("cached attention", v, (past+n)*NKV*HD)
	c.check(c.l.attentionCached(c.ptr(out), c.ptr(q), c.ptr(k), c.ptr(v), [5]int64{int64(past), int64(n), int64(NH), int64(NKV), int64(HD)}))
}

// SwiGLU: y = silu(gate)*up.
func (c *CUDA) SwiGLU(y, gate, up backend.Buffer) {
	c.f32("swiglu", y, gate, up)
	sameLen("swiglu", y.Len(), gate, up)
	c.check(c.l.swiglu(c.ptr(y), c.ptr(gate), c.ptr(up), int64(y.Len())))
}

// SwiGLUBackward writes dgate and dup.
func (c *CUDA) SwiGLUBackward(dgate, dup, dy, gate, up backend.Buffer) {
	c.f32("swiglu backward", dgate, dup, dy, gate, up)
	sameLen("swiglu backward", dy.Len(), dgate, dup, gate, up)
	c.check(c.l.swigluBackward(c.ptr(dgate), c.ptr(dup), c.ptr(dy), c.ptr(gate), c.ptr(up), int64(dy.Len())))
}

// CrossEntropy: fused masked cross-entropy, one block per row.
func (c *CUDA) CrossEntropy(dlogits, logits, targets backend.Buffer, rows, vocab int, scale float32) (float64, int) {
	c.f32("cross-entropy", dlogits, logits)
	c.i32("cross-entropy", targets)
	atLeast("cross-entropy", logits, rows*vocab)
	atLeast("cross-entropy", dlogits, rows*vocab)
	atLeast("cross-entropy", targets, rows)
	s, n, rc := c.l.crossEntropy(c.ptr(dlogits), c.ptr(logits), c.ptr(targets), int64(rows), int64(vocab), scale)
	c.check(rc)
	return s, int(n)
}

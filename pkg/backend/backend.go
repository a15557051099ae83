// Package backend is the set of numeric operations the LLaMA model
// (pkg/llama) and the trainer (pkg/train) run on: every tensor a training
// step or a decoding step touches lives in backend-owned buffers, and host
// memory is reached only through Upload and Download. The model calls only
// this interface; pkg/backend/cpu is the pure-Go reference implementation
// that every other backend (CUDA) is tested against. Backends register
// themselves by name (Register) and are opened by name (Open), so the model
// package never imports an implementation.
//
// Conventions: tensors are dense row-major buffers; compute is float32
// (F32 buffers) unless an operation says otherwise (MatMul's B operand and
// Embedding's table may be BF16 or F16: weights kept as stored). Index
// buffers (tokens, positions, segments, targets, row lists) are I32.
// Operations named ...Backward accumulate (+=) into parameter gradients and
// into the input gradient where noted, so that residual connections and
// gradient accumulation need no extra buffers.
package backend

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// DType is the element type of a buffer.
type DType uint8

// Element types.
const (
	F32  DType = iota + 1 // float32
	BF16                  // bfloat16 (upper half of a float32)
	F16                   // IEEE half precision
	I32                   // int32 (index buffers)
)

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case F16:
		return "f16"
	case I32:
		return "i32"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == F32 || d == BF16 || d == F16 }

// Buffer is a view of backend-owned memory: n elements of one dtype at an
// element offset into a storage block. It is a small value; views (Slice)
// cost nothing and never copy, so parameters are views into one arena and
// activations views into their blocks. Only the backend that made the
// storage can interpret it.
type Buffer struct {
	st  any // backend-owned storage (opaque outside the backend)
	off int
	n   int
	dt  DType
}

// NewBuffer is for backend implementations: a buffer of n elements of dt
// over storage st, starting at element off.
func NewBuffer(st any, dt DType, off, n int) Buffer { return Buffer{st: st, dt: dt, off: off, n: n} }

// Storage is for backend implementations: the storage behind the buffer.
func (b Buffer) Storage() any { return b.st }

// Offset is the element offset of the view into its storage.
func (b Buffer) Offset() int { return b.off }

// Len is the number of elements.
func (b Buffer) Len() int { return b.n }

// DType is the element type.
func (b Buffer) DType() DType { return b.dt }

// IsNil reports whether b refers to no storage.
func (b Buffer) IsNil() bool { return b.st == nil }

// Slice is the view of elements [lo, hi) of b.
func (b Buffer) Slice(lo, hi int) Buffer {
	if lo < 0 || hi < lo || hi > b.n {
		panic(fmt.Sprintf("backend: slice [%d:%d] of a buffer of %d", lo, hi, b.n))
	}
	return Buffer{st: b.st, dt: b.dt, off: b.off + lo, n: hi - lo}
}

// AttnShape describes a batch for Attention: B rows of T positions, NH query
// heads and NKV key/value heads (NH % NKV == 0, grouped-query attention) of
// HD dims each. q is laid out [B*T, NH*HD], k and v [B*T, NKV*HD].
type AttnShape struct{ B, T, NH, NKV, HD int }

// AdamW holds the hyper-parameters of one AdamW update (torch.optim.AdamW
// semantics: decoupled weight decay w *= 1-lr*wd, bias-corrected moments).
// Like PyTorch's Python-float hyper-parameters they are float64; derived
// constants (1-beta, lr/bias_correction) are formed in float64 and rounded
// once to float32.
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Step                               int64 // 1-based step number used for bias correction
}

// Span is a range [Off, Off+Len) of an arena holding one parameter; Decay
// says whether AdamW's weight decay applies to it.
type Span struct {
	Off, Len int
	Decay    bool
}

// Backend is the interface the model and the trainer are written against.
type Backend interface {
	// Name says which implementation (and which matmul path) runs.
	Name() string

	// Alloc returns a zeroed buffer of n elements of dt.
	Alloc(dt DType, n int) (Buffer, error)
	// Free releases a buffer made by Alloc (the whole block, not a view);
	// the CPU backend leaves it to the garbage collector.
	Free(b Buffer)
	// Upload copies src into dst (len(src) == dst.Len()), converting to
	// dst's float dtype (rounding to nearest even).
	Upload(dst Buffer, src []float32)
	// UploadInt32 copies src into the I32 buffer dst.
	UploadInt32(dst Buffer, src []int32)
	// UploadRaw copies little-endian elements of dst's dtype into dst
	// (len(src) == dst.Len()*dtype size): weights as stored in a file.
	UploadRaw(dst Buffer, src []byte)
	// Download copies src (any float dtype) into dst as float32.
	Download(dst []float32, src Buffer)

	// Zero sets x to zero.
	Zero(x Buffer)
	// Copy: dst = src (same length, F32).
	Copy(dst, src Buffer)
	// Add: dst += src (residual add).
	Add(dst, src Buffer)
	// Scale: x *= s (gradient clipping).
	Scale(x Buffer, s float32)
	// Mul: dst = a ⊙ b elementwise (same lengths, F32; dst may be a or b):
	// LoRA's dropout mask.
	Mul(dst, a, b Buffer)
	// SumSquares returns the sum of x[i]^2 over the spans: each span is
	// summed in order in float64, then the spans' sums are added in order
	// (the squared global gradient norm).
	SumSquares(x Buffer, spans []Span) float64
	// AdamW applies one AdamW step over the spans of the arenas w (weights),
	// g (gradients), m and v (moments), all laid out alike, with
	// torch.optim.AdamW's single-tensor fp32 arithmetic:
	//   w *= 1-lr*wd (spans with Decay, when wd != 0)
	//   m = m*b1 + g*(1-b1);  v = v*b2 + (1-b2)*(g*g)
	//   w += -lr/(1-b1^t) * (m / (sqrt(v)/sqrt(1-b2^t) + eps))
	AdamW(w, g, m, v Buffer, spans []Span, p AdamW)

	// Embedding: out[i] = table[tokens[i]] (rows of dim); table may be
	// F32, BF16 or F16, out is F32.
	Embedding(out, table, tokens Buffer, dim int)
	// EmbeddingBackward: dtable[tokens[i]] += dout[i], in position order.
	EmbeddingBackward(dtable, dout, tokens Buffer, dim int)
	// GatherRows: dst[r] = src[rows[r]] for r < rows.Len() (rows of dim).
	GatherRows(dst, src, rows Buffer, dim int)
	// ScatterRows: dst[rows[r]] = src[r] (other rows of dst untouched).
	ScatterRows(dst, src, rows Buffer, dim int)

	// MatMul computes C = alpha*op(A)*op(B) + beta*C where op(A) is m×k and
	// op(B) is k×n, all row-major with leading dimensions lda, ldb, ldc.
	// A and C are F32; B may be F32, BF16 or F16 (weights as stored,
	// widened to float32 exactly while packing).
	MatMul(transA, transB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int)

	// RMSNorm: y[r] = w * x[r] / sqrt(mean(x[r]^2) + eps) for rows×dim x;
	// rstd[r] receives 1/sqrt(mean(x^2)+eps) for the backward pass.
	RMSNorm(y, rstd, x, w Buffer, rows, dim int, eps float32)
	// RMSNormBackward accumulates dx += dL/dx and dw += dL/dw.
	RMSNormBackward(dx, dw, dy, x, w, rstd Buffer, rows, dim int)

	// RoPE rotates x ([rows, heads*headDim]) in place in Hugging Face's
	// rotate-half convention: for i < headDim/2 with c=cos[p][i], s=sin[p][i]
	// (tables [maxPos][headDim/2], p = pos[row], pos I32):
	//   x[i] <- x[i]*c - x[i+h]*s;  x[i+h] <- x[i+h]*c + x[i]*s.
	// inverse applies the transposed rotation (the backward pass).
	RoPE(x, pos Buffer, rows, heads, headDim int, cos, sin Buffer, inverse bool)

	// Attention computes causal softmax attention with scale 1/sqrt(HD):
	// position i of a row sees j <= i only when seg[j] == seg[i] (seg I32).
	// out is [B*T, NH*HD]; lse [B*NH*T] receives each row's log-sum-exp of
	// the scaled scores (kept for the backward pass).
	Attention(out, lse, q, k, v, seg Buffer, s AttnShape)
	// AttentionBackward writes (overwrites) dq, dk, dv from dout.
	AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, seg Buffer, s AttnShape)
	// AttentionCached is causal attention of n new queries q [n, NH*HD] at
	// positions past..past+n-1 of one sequence against the cached keys and
	// values k, v [>= past+n, NKV*HD] (query i sees keys 0..past+i); out
	// is [n, NH*HD]. It is the inference (KV cache) path.
	AttentionCached(out, q, k, v Buffer, past, n, NH, NKV, HD int)

	// SwiGLU: y = silu(gate) * up, elementwise.
	SwiGLU(y, gate, up Buffer)
	// SwiGLUBackward writes (overwrites) dgate and dup.
	SwiGLUBackward(dgate, dup, dy, gate, up Buffer)

	// CrossEntropy computes, for each of rows rows of logits [rows, vocab]
	// with target t (I32; t < 0: ignored), -log softmax(logits)[t]. It
	// returns the sum (float64) and the number of counted rows, and
	// overwrites dlogits (may alias logits) with scale * d(sum)/d(logits).
	CrossEntropy(dlogits, logits, targets Buffer, rows, vocab int, scale float32) (lossSum float64, n int)
}

// HostMapper is implemented by backends whose buffers can be host memory
// (the CPU backend): WrapHost makes a read-only buffer over src (raw
// little-endian elements of dt, e.g. memory-mapped safetensors data)
// without copying. ok is false when src cannot be used as is (alignment).
type HostMapper interface {
	WrapHost(dt DType, src []byte) (b Buffer, ok bool)
}

// Options are what Open passes to a backend's factory.
type Options struct {
	Threads int // CPU threads (0: GOMAXPROCS); device backends may ignore it
	Device  int // device ordinal for multi-device backends
}

// Factory makes a backend.
type Factory func(Options) (Backend, error)

var (
	regMu    sync.Mutex
	registry = map[string]Factory{}
)

// Register makes a backend available to Open under name. Implementations
// call it from an init function (pkg/backend/cpu registers "cpu"); a
// program links a backend in by importing its package.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("backend: " + name + " registered twice")
	}
	registry[name] = f
}

// Names lists the registered backends.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	var ns []string
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Open makes the backend registered under name.
func Open(name string, o Options) (Backend, error) {
	regMu.Lock()
	f, ok := registry[name]
	regMu.Unlock()
	if !ok {
		hint := ""
		if name == "cuda" {
			hint = " (this program does not link pkg/backend/cuda; use --device cpu)"
		}
		have := strings.Join(Names(), ", ")
		if have == "" {
			have = "none"
		}
		return nil, fmt.Errorf("no backend registered for %q%s; available: %s", name, hint, have)
	}
	return f(o)
}

// GemmShapeError checks the operands of MatMul (C = op(A)*op(B), row-major,
// la, lb, lc elements) against m, n, k and the leading dimensions, for a
// backend to check before any kernel touches memory; "" when they fit.
func GemmShapeError(transA, transB bool, m, n, k, la, lda, lb, ldb, lc, ldc int) string {
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	if lda < max(1, colsA) || ldb < max(1, colsB) || ldc < max(1, n) {
		return "bad leading dimension"
	}
	if k > 0 && (la < (rowsA-1)*lda+colsA || lb < (rowsB-1)*ldb+colsB) || lc < (m-1)*ldc+n {
		return "operand too short"
	}
	return ""
}

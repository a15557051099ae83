// Package backend is the small set of numeric operations the LLaMA model
// (pkg/llama) needs for a training step. The model calls only this
// interface; pkg/backend/cpu is the pure-Go reference implementation that
// every other backend (CUDA) is tested against.
//
// Conventions: all tensors are dense row-major float32 slices. Operations
// named ...Backward accumulate (+=) into parameter gradients and into the
// input gradient where noted, so that residual connections and gradient
// accumulation need no extra buffers.
package backend

// AttnShape describes a batch for Attention: B rows of T positions, NH query
// heads and NKV key/value heads (NH % NKV == 0, grouped-query attention) of
// HD dims each. q is laid out [B*T, NH*HD], k and v [B*T, NKV*HD].
type AttnShape struct{ B, T, NH, NKV, HD int }

// AdamW holds the hyper-parameters of one AdamW update (PyTorch semantics:
// decoupled weight decay w *= 1-lr*wd, bias-corrected moments). Like
// PyTorch's Python-float hyper-parameters they are float64; derived
// constants (1-beta, lr/bias_correction) are formed in float64 and rounded
// once to float32.
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Step                               int // 1-based step number used for bias correction
}

// Backend is the interface the model is written against.
type Backend interface {
	// Name says which implementation (and which matmul path) runs.
	Name() string

	// MatMul computes C = alpha*op(A)*op(B) + beta*C where op(A) is m×k and
	// op(B) is k×n, all row-major with leading dimensions lda, ldb, ldc.
	MatMul(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

	// RMSNorm: y[r] = w * x[r] / sqrt(mean(x[r]^2) + eps) for rows×dim x;
	// rstd[r] receives 1/sqrt(mean(x^2)+eps) for the backward pass.
	RMSNorm(y, rstd, x, w []float32, rows, dim int, eps float32)
	// RMSNormBackward accumulates dx += dL/dx and dw += dL/dw.
	RMSNormBackward(dx, dw, dy, x, w, rstd []float32, rows, dim int)

	// RoPE rotates x ([rows, heads*headDim]) in place in Hugging Face's
	// rotate-half convention: for i < headDim/2 with c=cos[p][i], s=sin[p][i]
	// (tables [maxPos][headDim/2], p = pos[row]):
	//   x[i] <- x[i]*c - x[i+h]*s;  x[i+h] <- x[i+h]*c + x[i]*s.
	// inverse applies the transposed rotation (the backward pass).
	RoPE(x []float32, pos []int32, rows, heads, headDim int, cos, sin []float32, inverse bool)

	// Attention computes causal softmax attention with scale 1/sqrt(HD):
	// position i of a row sees j <= i only when seg[j] == seg[i]. out is
	// [B*T, NH*HD]; lse [B*NH*T] receives each row's log-sum-exp of the
	// scaled scores (kept for the backward pass).
	Attention(out, lse, q, k, v []float32, seg []int32, s AttnShape)
	// AttentionBackward writes (overwrites) dq, dk, dv from dout.
	AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v []float32, seg []int32, s AttnShape)

	// SwiGLU: y = silu(gate) * up, elementwise.
	SwiGLU(y, gate, up []float32)
	// SwiGLUBackward writes (overwrites) dgate and dup.
	SwiGLUBackward(dgate, dup, dy, gate, up []float32)

	// CrossEntropy computes, for each of rows rows of logits [rows, vocab]
	// with target t (t < 0: ignored), -log softmax(logits)[t]. It returns
	// the sum (float64) and the number of counted rows, and overwrites
	// dlogits (may alias logits) with scale * d(sum)/d(logits).
	CrossEntropy(dlogits, logits []float32, targets []int32, rows, vocab int, scale float32) (lossSum float64, n int)

	// AdamWUpdate applies one AdamW step to w given gradient g, updating
	// the moments m and v in place.
	AdamWUpdate(w, g, m, v []float32, p AdamW)
}

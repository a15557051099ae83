package llama

import (
	"fmt"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// layerActs are the activations of one decoder layer kept for backward.
type layerActs struct {
	xn1, q, k, v, att, lse, h, hn, gate, up, act []float32
	rstd1, rstd2                                 []float32
}

// acts are the buffers of a step, reused while B*T stays the same.
type acts struct {
	n      int         // B*T they were sized for
	xs     [][]float32 // residual stream: xs[0] embeddings, xs[L] final
	layers []layerActs
	rstdF  []float32
	xnF    []float32
	// backward scratch
	dx, dA, dq, dk, dv, dI1, dI2, dI3 []float32
	// target rows
	rows   []int32
	tg     []int32
	xg     []float32
	logits []float32
}

// ensureActs makes the step buffers fit B*T positions. Buffers only grow:
// a smaller batch reuses the largest one's memory (so padded batches of
// varying length do not allocate every step).
func (m *Model) ensureActs(B, T int) {
	N := B * T
	if m.act.n == N {
		return
	}
	// keep the grown target-row buffers
	m.actBack.rows, m.actBack.tg, m.actBack.xg, m.actBack.logits = m.act.rows, m.act.tg, m.act.xg, m.act.logits
	if N > m.actCap {
		m.actBack = m.allocActs(N)
		m.actCap = N
	}
	m.act = resliceActs(&m.actBack, m.actCap, N)
}

func (m *Model) allocActs(N int) acts {
	c := m.Config
	D, I, L := c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers
	Dkv := c.NumKeyValueHeads * c.HeadDim()
	f := func(n int) []float32 { return make([]float32, n) }
	a := acts{n: N}
	for l := 0; l <= L; l++ {
		a.xs = append(a.xs, f(N*D))
	}
	for l := 0; l < L; l++ {
		a.layers = append(a.layers, layerActs{
			xn1: f(N * D), q: f(N * D), k: f(N * Dkv), v: f(N * Dkv), att: f(N * D),
			lse: f(N * c.NumAttentionHeads), h: f(N * D), hn: f(N * D),
			gate: f(N * I), up: f(N * I), act: f(N * I), rstd1: f(N), rstd2: f(N),
		})
	}
	a.rstdF, a.xnF = f(N), f(N*D)
	a.dx, a.dA, a.dq = f(N*D), f(N*D), f(N*D)
	a.dk, a.dv = f(N*Dkv), f(N*Dkv)
	a.dI1, a.dI2, a.dI3 = f(N*I), f(N*I), f(N*I)
	return a
}

// resliceActs views the buffers of back (sized for capN positions) as
// buffers for n positions; every buffer's length is proportional to the
// number of positions.
func resliceActs(back *acts, capN, n int) acts {
	r := func(s []float32) []float32 { return s[:len(s)/capN*n] }
	a := acts{n: n, rows: back.rows, tg: back.tg, xg: back.xg, logits: back.logits}
	for _, x := range back.xs {
		a.xs = append(a.xs, r(x))
	}
	for _, l := range back.layers {
		a.layers = append(a.layers, layerActs{
			xn1: r(l.xn1), q: r(l.q), k: r(l.k), v: r(l.v), att: r(l.att), lse: r(l.lse),
			h: r(l.h), hn: r(l.hn), gate: r(l.gate), up: r(l.up), act: r(l.act),
			rstd1: r(l.rstd1), rstd2: r(l.rstd2),
		})
	}
	a.rstdF, a.xnF = r(back.rstdF), r(back.xnF)
	a.dx, a.dA, a.dq, a.dk, a.dv = r(back.dx), r(back.dA), r(back.dq), r(back.dk), r(back.dv)
	a.dI1, a.dI2, a.dI3 = r(back.dI1), r(back.dI2), r(back.dI3)
	return a
}

// ReleaseBuffers drops the activation buffers (they are re-made on the
// next step).
func (m *Model) ReleaseBuffers() { m.act, m.actBack, m.actCap = acts{}, acts{}, 0 }

// Check validates a batch against the model: lengths, token and target ids
// in range, non-negative positions.
func (m *Model) Check(b *Batch) error {
	N := b.B * b.T
	if b.B <= 0 || b.T <= 0 {
		return fmt.Errorf("llama: batch shape %dx%d", b.B, b.T)
	}
	if len(b.Tokens) != N || len(b.Pos) != N || len(b.Seg) != N || (b.Target != nil && len(b.Target) != N) {
		return fmt.Errorf("llama: batch %dx%d: slices have lengths tokens %d pos %d seg %d target %d",
			b.B, b.T, len(b.Tokens), len(b.Pos), len(b.Seg), len(b.Target))
	}
	V := int32(m.Config.VocabSize)
	for i := 0; i < N; i++ {
		if t := b.Tokens[i]; t < 0 || t >= V {
			return fmt.Errorf("llama: batch row %d position %d: token id %d outside the vocabulary [0,%d)", i/b.T, i%b.T, t, V)
		}
		if b.Pos[i] < 0 {
			return fmt.Errorf("llama: batch row %d position %d: negative position id %d", i/b.T, i%b.T, b.Pos[i])
		}
		if b.Target != nil {
			if t := b.Target[i]; t < -1 || t >= V {
				return fmt.Errorf("llama: batch row %d position %d: target id %d outside the vocabulary [0,%d)", i/b.T, i%b.T, t, V)
			}
		}
	}
	return nil
}

// forward runs the decoder stack and the final norm, leaving everything
// needed by backward in m.act.
func (m *Model) forward(b *Batch) {
	c := m.Config
	be := m.be
	B, T := b.B, b.T
	N := B * T
	D, I := c.HiddenSize, c.IntermediateSize
	HD := c.HeadDim()
	NH, NKV := c.NumAttentionHeads, c.NumKeyValueHeads
	Dkv := NKV * HD
	eps := float32(c.RMSNormEps)
	m.ensureActs(B, T)
	maxPos := int32(0)
	for _, p := range b.Pos {
		maxPos = max(maxPos, p)
	}
	m.rope(int(maxPos) + 1)
	a := &m.act
	// embeddings
	x0 := a.xs[0]
	for i, t := range b.Tokens {
		copy(x0[i*D:(i+1)*D], m.embed.W[int(t)*D:(int(t)+1)*D])
	}
	shape := backend.AttnShape{B: B, T: T, NH: NH, NKV: NKV, HD: HD}
	for l, ly := range m.layers {
		la := &a.layers[l]
		x := a.xs[l]
		be.RMSNorm(la.xn1, la.rstd1, x, ly.inNorm.W, N, D, eps)
		be.MatMul(false, true, N, D, D, 1, la.xn1, D, ly.q.W, D, 0, la.q, D)
		be.MatMul(false, true, N, Dkv, D, 1, la.xn1, D, ly.k.W, D, 0, la.k, Dkv)
		be.MatMul(false, true, N, Dkv, D, 1, la.xn1, D, ly.v.W, D, 0, la.v, Dkv)
		be.RoPE(la.q, b.Pos, N, NH, HD, m.ropeCos, m.ropeSin, false)
		be.RoPE(la.k, b.Pos, N, NKV, HD, m.ropeCos, m.ropeSin, false)
		be.Attention(la.att, la.lse, la.q, la.k, la.v, b.Seg, shape)
		copy(la.h, x)
		be.MatMul(false, true, N, D, D, 1, la.att, D, ly.o.W, D, 1, la.h, D)
		be.RMSNorm(la.hn, la.rstd2, la.h, ly.postNorm.W, N, D, eps)
		be.MatMul(false, true, N, I, D, 1, la.hn, D, ly.gate.W, D, 0, la.gate, I)
		be.MatMul(false, true, N, I, D, 1, la.hn, D, ly.up.W, D, 0, la.up, I)
		be.SwiGLU(la.act, la.gate, la.up)
		out := a.xs[l+1]
		copy(out, la.h)
		be.MatMul(false, true, N, D, I, 1, la.act, I, ly.down.W, I, 1, out, D)
	}
	be.RMSNorm(a.xnF, a.rstdF, a.xs[len(m.layers)], m.norm.W, N, D, eps)
}

// Forward returns the logits [B*T*V] (a new slice). It panics on a batch
// that fails Check.
func (m *Model) Forward(b *Batch) (logits []float32) {
	if err := m.Check(b); err != nil {
		panic(err)
	}
	m.forward(b)
	N, D, V := b.B*b.T, m.Config.HiddenSize, m.Config.VocabSize
	logits = make([]float32, N*V)
	m.be.MatMul(false, true, N, V, D, 1, m.act.xnF, D, m.lmHead.W, D, 0, logits, V)
	return logits
}

// ForwardBackward runs the model on b and returns the sum of cross-entropy
// over the targets (Target >= 0) and their number; it accumulates
// scale*d(sum)/dW into the gradients. Logits are computed only for the
// positions that have a target.
func (m *Model) ForwardBackward(b *Batch, scale float32) (lossSum float64, n int, err error) {
	if err := m.Check(b); err != nil {
		return 0, 0, err
	}
	if b.Target == nil {
		return 0, 0, fmt.Errorf("llama: ForwardBackward needs targets")
	}
	m.ensureGrads()
	c := m.Config
	be := m.be
	B, T := b.B, b.T
	N := B * T
	D, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	HD := c.HeadDim()
	NH, NKV := c.NumAttentionHeads, c.NumKeyValueHeads
	Dkv := NKV * HD
	m.forward(b)
	a := &m.act

	// gather the rows with a target
	a.rows = a.rows[:0]
	for i, t := range b.Target {
		if t >= 0 {
			a.rows = append(a.rows, int32(i))
		}
	}
	nt := len(a.rows)
	if nt == 0 {
		return 0, 0, nil
	}
	if cap(a.xg) < nt*D {
		a.xg = make([]float32, nt*D)
	}
	if cap(a.logits) < nt*V {
		a.logits = make([]float32, nt*V)
	}
	xg, logits := a.xg[:nt*D], a.logits[:nt*V]
	a.tg = append(a.tg[:0], make([]int32, nt)...)
	tg := a.tg
	for r, i := range a.rows {
		copy(xg[r*D:(r+1)*D], a.xnF[int(i)*D:(int(i)+1)*D])
		tg[r] = b.Target[i]
	}
	be.MatMul(false, true, nt, V, D, 1, xg, D, m.lmHead.W, D, 0, logits, V)
	lossSum, n = be.CrossEntropy(logits, logits, tg, nt, V, scale)

	// lm_head
	dxnF := a.dA
	clear(dxnF)
	dxg := a.dq[:nt*D] // scratch
	be.MatMul(false, false, nt, D, V, 1, logits, V, m.lmHead.W, D, 0, dxg, D)
	be.MatMul(true, false, V, D, nt, 1, logits, V, xg, D, 1, m.lmHead.G, D)
	for r, i := range a.rows {
		copy(dxnF[int(i)*D:(int(i)+1)*D], dxg[r*D:(r+1)*D])
	}
	dx := a.dx
	clear(dx)
	L := len(m.layers)
	be.RMSNormBackward(dx, m.norm.G, dxnF, a.xs[L], m.norm.W, a.rstdF, N, D)

	shape := backend.AttnShape{B: B, T: T, NH: NH, NKV: NKV, HD: HD}
	for l := L - 1; l >= 0; l-- {
		ly := m.layers[l]
		la := &a.layers[l]
		// MLP: out = h + act·down^T
		be.MatMul(true, false, D, I, N, 1, dx, D, la.act, I, 1, ly.down.G, I)
		dact := a.dI1
		be.MatMul(false, false, N, I, D, 1, dx, D, ly.down.W, I, 0, dact, I)
		dg, du := a.dI2, a.dI3
		be.SwiGLUBackward(dg, du, dact, la.gate, la.up)
		be.MatMul(true, false, I, D, N, 1, dg, I, la.hn, D, 1, ly.gate.G, D)
		be.MatMul(true, false, I, D, N, 1, du, I, la.hn, D, 1, ly.up.G, D)
		dhn := a.dA
		be.MatMul(false, false, N, D, I, 1, dg, I, ly.gate.W, D, 0, dhn, D)
		be.MatMul(false, false, N, D, I, 1, du, I, ly.up.W, D, 1, dhn, D)
		be.RMSNormBackward(dx, ly.postNorm.G, dhn, la.h, ly.postNorm.W, la.rstd2, N, D)
		// attention: h = x + att·o^T
		be.MatMul(true, false, D, D, N, 1, dx, D, la.att, D, 1, ly.o.G, D)
		datt := a.dA
		be.MatMul(false, false, N, D, D, 1, dx, D, ly.o.W, D, 0, datt, D)
		be.AttentionBackward(a.dq, a.dk, a.dv, datt, la.att, la.lse, la.q, la.k, la.v, b.Seg, shape)
		be.RoPE(a.dq, b.Pos, N, NH, HD, m.ropeCos, m.ropeSin, true)
		be.RoPE(a.dk, b.Pos, N, NKV, HD, m.ropeCos, m.ropeSin, true)
		be.MatMul(true, false, D, D, N, 1, a.dq, D, la.xn1, D, 1, ly.q.G, D)
		be.MatMul(true, false, Dkv, D, N, 1, a.dk, Dkv, la.xn1, D, 1, ly.k.G, D)
		be.MatMul(true, false, Dkv, D, N, 1, a.dv, Dkv, la.xn1, D, 1, ly.v.G, D)
		dxn := a.dA
		be.MatMul(false, false, N, D, D, 1, a.dq, D, ly.q.W, D, 0, dxn, D)
		be.MatMul(false, false, N, D, Dkv, 1, a.dk, Dkv, ly.k.W, D, 1, dxn, D)
		be.MatMul(false, false, N, D, Dkv, 1, a.dv, Dkv, ly.v.W, D, 1, dxn, D)
		be.RMSNormBackward(dx, ly.inNorm.G, dxn, a.xs[l], ly.inNorm.W, la.rstd1, N, D)
	}
	// embeddings
	for i, t := range b.Tokens {
		g := m.embed.G[int(t)*D : (int(t)+1)*D]
		for j, v := range dx[i*D : (i+1)*D] {
			g[j] += v
		}
	}
	return lossSum, n, nil
}

package llama

import (
	"fmt"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// layerActs are the activations of one decoder layer kept for backward.
type layerActs struct {
	xn1, q, k, v, att, lse, h, hn, gate, up, act backend.Buffer
	rstd1, rstd2                                 backend.Buffer
}

// acts are the buffers of a step, reused while B*T stays the same. All
// live on the backend; the batch's index arrays are uploaded into
// tokens/pos/seg/target.
type acts struct {
	n      int              // B*T they were sized for
	xs     []backend.Buffer // residual stream: xs[0] embeddings, xs[L] final
	layers []layerActs
	rstdF  backend.Buffer
	xnF    backend.Buffer
	// backward scratch
	dx, dA, dq, dk, dv, dI1, dI2, dI3 backend.Buffer
	// batch (I32)
	tokens, pos, seg, target backend.Buffer
	// target rows (grown on demand, kept across shapes)
	rows, tg   backend.Buffer
	xg, logits backend.Buffer
	rowsHost   []int32
	tgHost     []int32
}

// ensureActs makes the step buffers fit B*T positions. Buffers only grow:
// a smaller batch reuses the largest one's memory (so padded batches of
// varying length do not allocate every step).
func (m *Model) ensureActs(B, T int) error {
	N := B * T
	if m.act.n == N {
		return nil
	}
	// keep the grown target-row buffers
	m.actBack.rows, m.actBack.tg, m.actBack.xg, m.actBack.logits = m.act.rows, m.act.tg, m.act.xg, m.act.logits
	m.actBack.rowsHost, m.actBack.tgHost = m.act.rowsHost, m.act.tgHost
	if N > m.actCap {
		m.freeActs(&m.actBack)
		a, err := m.allocActs(N)
		if err != nil {
			m.act, m.actBack, m.actCap = acts{}, acts{}, 0
			return err
		}
		a.rows, a.tg, a.xg, a.logits = m.actBack.rows, m.actBack.tg, m.actBack.xg, m.actBack.logits
		a.rowsHost, a.tgHost = m.actBack.rowsHost, m.actBack.tgHost
		m.actBack = a
		m.actCap = N
	}
	m.act = resliceActs(&m.actBack, m.actCap, N)
	return nil
}

// allocActs allocates the step buffers for N positions.
func (m *Model) allocActs(N int) (a acts, err error) {
	c := m.Config
	D, I, L := c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers
	Dkv := c.NumKeyValueHeads * c.HeadDim()
	f := func(n int) backend.Buffer {
		if err != nil {
			return backend.Buffer{}
		}
		var b backend.Buffer
		b, err = m.be.Alloc(backend.F32, n)
		return b
	}
	i32 := func(n int) backend.Buffer {
		if err != nil {
			return backend.Buffer{}
		}
		var b backend.Buffer
		b, err = m.be.Alloc(backend.I32, n)
		return b
	}
	a = acts{n: N}
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
	a.tokens, a.pos, a.seg, a.target = i32(N), i32(N), i32(N), i32(N)
	if err != nil {
		m.freeActs(&a)
		return acts{}, fmt.Errorf("llama: allocating activations for %d positions: %w", N, err)
	}
	return a, nil
}

// freeActs frees the per-shape buffers of a (not the grown target-row ones).
func (m *Model) freeActs(a *acts) {
	free := func(bs ...backend.Buffer) {
		for _, b := range bs {
			if !b.IsNil() {
				m.be.Free(b)
			}
		}
	}
	free(a.xs...)
	for _, l := range a.layers {
		free(l.xn1, l.q, l.k, l.v, l.att, l.lse, l.h, l.hn, l.gate, l.up, l.act, l.rstd1, l.rstd2)
	}
	free(a.rstdF, a.xnF, a.dx, a.dA, a.dq, a.dk, a.dv, a.dI1, a.dI2, a.dI3, a.tokens, a.pos, a.seg, a.target)
}

// resliceActs views the buffers of back (sized for capN positions) as
// buffers for n positions; every buffer's length is proportional to the
// number of positions.
func resliceActs(back *acts, capN, n int) acts {
	r := func(s backend.Buffer) backend.Buffer { return s.Slice(0, s.Len()/capN*n) }
	a := acts{n: n, rows: back.rows, tg: back.tg, xg: back.xg, logits: back.logits, rowsHost: back.rowsHost, tgHost: back.tgHost}
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
	a.tokens, a.pos, a.seg, a.target = r(back.tokens), r(back.pos), r(back.seg), r(back.target)
	return a
}

// grow returns b (freed and re-made when shorter than n) sliced to n.
func (m *Model) grow(b *backend.Buffer, dt backend.DType, n int) (backend.Buffer, error) {
	if b.IsNil() || b.Len() < n {
		if !b.IsNil() {
			m.be.Free(*b)
		}
		nb, err := m.be.Alloc(dt, n)
		if err != nil {
			*b = backend.Buffer{}
			return nb, err
		}
		*b = nb
	}
	return b.Slice(0, n), nil
}

// ReleaseBuffers drops the activation buffers (they are re-made on the
// next step).
func (m *Model) ReleaseBuffers() {
	m.freeActs(&m.actBack)
	for _, b := range []backend.Buffer{m.act.rows, m.act.tg, m.act.xg, m.act.logits, m.fwdLogits} {
		if !b.IsNil() {
			m.be.Free(b)
		}
	}
	m.act, m.actBack, m.actCap, m.fwdLogits = acts{}, acts{}, 0, backend.Buffer{}
	m.releaseInfer()
}

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
// needed by backward in m.act; train draws LoRA dropout masks.
func (m *Model) forward(b *Batch, train bool) error {
	c := m.Config
	be := m.be
	B, T := b.B, b.T
	N := B * T
	D, I := c.HiddenSize, c.IntermediateSize
	HD := c.HeadDim()
	NH, NKV := c.NumAttentionHeads, c.NumKeyValueHeads
	Dkv := NKV * HD
	eps := float32(c.RMSNormEps)
	if err := m.ensureActs(B, T); err != nil {
		return err
	}
	if m.lora != nil {
		if err := m.lora.ensure(be, N, max(D, I), D); err != nil {
			return err
		}
	}
	maxPos := int32(0)
	for _, p := range b.Pos {
		maxPos = max(maxPos, p)
	}
	if err := m.rope(int(maxPos) + 1); err != nil {
		return err
	}
	a := &m.act
	be.UploadInt32(a.tokens, b.Tokens)
	be.UploadInt32(a.pos, b.Pos)
	be.UploadInt32(a.seg, b.Seg)
	// embeddings
	be.Embedding(a.xs[0], m.embed.w, a.tokens, D)
	shape := backend.AttnShape{B: B, T: T, NH: NH, NKV: NKV, HD: HD}
	for l, ly := range m.layers {
		la := &a.layers[l]
		x := a.xs[l]
		be.RMSNorm(la.xn1, la.rstd1, x, ly.inNorm.w, N, D, eps)
		be.MatMul(false, true, N, D, D, 1, la.xn1, D, ly.q.w, D, 0, la.q, D)
		be.MatMul(false, true, N, Dkv, D, 1, la.xn1, D, ly.k.w, D, 0, la.k, Dkv)
		be.MatMul(false, true, N, Dkv, D, 1, la.xn1, D, ly.v.w, D, 0, la.v, Dkv)
		if m.lora != nil {
			m.loraFwd(l, tQ, la.xn1, la.q, N, train)
			m.loraFwd(l, tK, la.xn1, la.k, N, train)
			m.loraFwd(l, tV, la.xn1, la.v, N, train)
		}
		be.RoPE(la.q, a.pos, N, NH, HD, m.ropeCos, m.ropeSin, false)
		be.RoPE(la.k, a.pos, N, NKV, HD, m.ropeCos, m.ropeSin, false)
		be.Attention(la.att, la.lse, la.q, la.k, la.v, a.seg, shape)
		be.Copy(la.h, x)
		be.MatMul(false, true, N, D, D, 1, la.att, D, ly.o.w, D, 1, la.h, D)
		if m.lora != nil {
			m.loraFwd(l, tO, la.att, la.h, N, train)
		}
		be.RMSNorm(la.hn, la.rstd2, la.h, ly.postNorm.w, N, D, eps)
		be.MatMul(false, true, N, I, D, 1, la.hn, D, ly.gate.w, D, 0, la.gate, I)
		be.MatMul(false, true, N, I, D, 1, la.hn, D, ly.up.w, D, 0, la.up, I)
		if m.lora != nil {
			m.loraFwd(l, tGate, la.hn, la.gate, N, train)
			m.loraFwd(l, tUp, la.hn, la.up, N, train)
		}
		be.SwiGLU(la.act, la.gate, la.up)
		out := a.xs[l+1]
		be.Copy(out, la.h)
		be.MatMul(false, true, N, D, I, 1, la.act, I, ly.down.w, I, 1, out, D)
		if m.lora != nil {
			m.loraFwd(l, tDown, la.act, out, N, train)
		}
	}
	be.RMSNorm(a.xnF, a.rstdF, a.xs[len(m.layers)], m.norm.w, N, D, eps)
	return nil
}

// Forward returns the logits [B*T*V] (a new slice). It panics on a batch
// that fails Check (or when the backend runs out of memory).
func (m *Model) Forward(b *Batch) (logits []float32) {
	if err := m.Check(b); err != nil {
		panic(err)
	}
	if err := m.forward(b, false); err != nil {
		panic(err)
	}
	N, D, V := b.B*b.T, m.Config.HiddenSize, m.Config.VocabSize
	lb, err := m.grow(&m.fwdLogits, backend.F32, N*V)
	if err != nil {
		panic(err)
	}
	m.be.MatMul(false, true, N, V, D, 1, m.act.xnF, D, m.lmHead.w, D, 0, lb, V)
	logits = make([]float32, N*V)
	m.be.Download(logits, lb)
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
	if m.lora != nil {
		return m.forwardBackwardLoRA(b, scale)
	}
	if err := m.ensureGrads(); err != nil {
		return 0, 0, err
	}
	c := m.Config
	be := m.be
	B, T := b.B, b.T
	N := B * T
	D, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	HD := c.HeadDim()
	NH, NKV := c.NumAttentionHeads, c.NumKeyValueHeads
	Dkv := NKV * HD
	if err := m.forward(b, true); err != nil {
		return 0, 0, err
	}
	a := &m.act

	// the rows with a target (host-side index list, uploaded)
	a.rowsHost, a.tgHost = a.rowsHost[:0], a.tgHost[:0]
	for i, t := range b.Target {
		if t >= 0 {
			a.rowsHost = append(a.rowsHost, int32(i))
			a.tgHost = append(a.tgHost, t)
		}
	}
	nt := len(a.rowsHost)
	if nt == 0 {
		return 0, 0, nil
	}
	rows, err := m.grow(&a.rows, backend.I32, nt)
	if err != nil {
		return 0, 0, err
	}
	tg, err := m.grow(&a.tg, backend.I32, nt)
	if err != nil {
		return 0, 0, err
	}
	xg, err := m.grow(&a.xg, backend.F32, nt*D)
	if err != nil {
		return 0, 0, err
	}
	logits, err := m.grow(&a.logits, backend.F32, nt*V)
	if err != nil {
		return 0, 0, err
	}
	be.UploadInt32(rows, a.rowsHost)
	be.UploadInt32(tg, a.tgHost)
	be.GatherRows(xg, a.xnF, rows, D)
	be.MatMul(false, true, nt, V, D, 1, xg, D, m.lmHead.w, D, 0, logits, V)
	lossSum, n = be.CrossEntropy(logits, logits, tg, nt, V, scale)

	// lm_head
	dxnF := a.dA
	be.Zero(dxnF)
	dxg := a.dq.Slice(0, nt*D) // scratch
	be.MatMul(false, false, nt, D, V, 1, logits, V, m.lmHead.w, D, 0, dxg, D)
	be.MatMul(true, false, V, D, nt, 1, logits, V, xg, D, 1, m.lmHead.g, D)
	be.ScatterRows(dxnF, dxg, rows, D)
	dx := a.dx
	be.Zero(dx)
	L := len(m.layers)
	be.RMSNormBackward(dx, m.norm.g, dxnF, a.xs[L], m.norm.w, a.rstdF, N, D)

	shape := backend.AttnShape{B: B, T: T, NH: NH, NKV: NKV, HD: HD}
	for l := L - 1; l >= 0; l-- {
		ly := m.layers[l]
		la := &a.layers[l]
		// MLP: out = h + act·down^T
		be.MatMul(true, false, D, I, N, 1, dx, D, la.act, I, 1, ly.down.g, I)
		dact := a.dI1
		be.MatMul(false, false, N, I, D, 1, dx, D, ly.down.w, I, 0, dact, I)
		dg, du := a.dI2, a.dI3
		be.SwiGLUBackward(dg, du, dact, la.gate, la.up)
		be.MatMul(true, false, I, D, N, 1, dg, I, la.hn, D, 1, ly.gate.g, D)
		be.MatMul(true, false, I, D, N, 1, du, I, la.hn, D, 1, ly.up.g, D)
		dhn := a.dA
		be.MatMul(false, false, N, D, I, 1, dg, I, ly.gate.w, D, 0, dhn, D)
		be.MatMul(false, false, N, D, I, 1, du, I, ly.up.w, D, 1, dhn, D)
		be.RMSNormBackward(dx, ly.postNorm.g, dhn, la.h, ly.postNorm.w, la.rstd2, N, D)
		// attention: h = x + att·o^T
		be.MatMul(true, false, D, D, N, 1, dx, D, la.att, D, 1, ly.o.g, D)
		datt := a.dA
		be.MatMul(false, false, N, D, D, 1, dx, D, ly.o.w, D, 0, datt, D)
		be.AttentionBackward(a.dq, a.dk, a.dv, datt, la.att, la.lse, la.q, la.k, la.v, a.seg, shape)
		be.RoPE(a.dq, a.pos, N, NH, HD, m.ropeCos, m.ropeSin, true)
		be.RoPE(a.dk, a.pos, N, NKV, HD, m.ropeCos, m.ropeSin, true)
		be.MatMul(true, false, D, D, N, 1, a.dq, D, la.xn1, D, 1, ly.q.g, D)
		be.MatMul(true, false, Dkv, D, N, 1, a.dk, Dkv, la.xn1, D, 1, ly.k.g, D)
		be.MatMul(true, false, Dkv, D, N, 1, a.dv, Dkv, la.xn1, D, 1, ly.v.g, D)
		dxn := a.dA
		be.MatMul(false, false, N, D, D, 1, a.dq, D, ly.q.w, D, 0, dxn, D)
		be.MatMul(false, false, N, D, Dkv, 1, a.dk, Dkv, ly.k.w, D, 1, dxn, D)
		be.MatMul(false, false, N, D, Dkv, 1, a.dv, Dkv, ly.v.w, D, 1, dxn, D)
		be.RMSNormBackward(dx, ly.inNorm.g, dxn, a.xs[l], ly.inNorm.w, la.rstd1, N, D)
	}
	// embeddings
	be.EmbeddingBackward(m.embed.g, dx, a.tokens, D)
	return lossSum, n, nil
}

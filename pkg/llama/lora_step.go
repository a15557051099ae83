package llama

import (
	"github.com/alpaca-go/alpaca/pkg/backend"
)

// forwardBackwardLoRA is ForwardBackward with an adapter attached: the
// same backward pass with the base weights frozen. Their gradients
// (matmuls, norms, embeddings, lm_head) are skipped; the input gradients
// flow through every layer, and each adapter adds its A/B gradients and
// its share of its input's gradient.
func (m *Model) forwardBackwardLoRA(b *Batch, scale float32) (lossSum float64, n int, err error) {
	c := m.Config
	be := m.be
	B, T := b.B, b.T
	N := B * T
	D, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	HD := c.HeadDim()
	NH, NKV := c.NumAttentionHeads, c.NumKeyValueHeads
	Dkv := NKV * HD
	lr := m.lora
	if err := m.forward(b, true); err != nil {
		return 0, 0, err
	}
	if lr.cfg.Dropout > 0 {
		lr.DropoutCalls++
	}
	a := &m.act
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

	dxnF := a.dA
	be.Zero(dxnF)
	dxg := a.dq.Slice(0, nt*D)
	be.MatMul(false, false, nt, D, V, 1, logits, V, m.lmHead.w, D, 0, dxg, D)
	be.ScatterRows(dxnF, dxg, rows, D)
	dx := a.dx
	be.Zero(dx)
	L := len(m.layers)
	nw := lr.norm // norm-weight gradients land here and are dropped
	be.Zero(nw)
	be.RMSNormBackward(dx, nw, dxnF, a.xs[L], m.norm.w, a.rstdF, N, D)

	shape := backend.AttnShape{B: B, T: T, NH: NH, NKV: NKV, HD: HD}
	for l := L - 1; l >= 0; l-- {
		ly := m.layers[l]
		la := &a.layers[l]
		mods := &lr.mods[l]
		// MLP
		dact := a.dI1
		be.MatMul(false, false, N, I, D, 1, dx, D, ly.down.w, I, 0, dact, I)
		if mods[tDown] != nil {
			m.loraBwd(l, tDown, la.act, dx, dact, N)
		}
		dg, du := a.dI2, a.dI3
		be.SwiGLUBackward(dg, du, dact, la.gate, la.up)
		dhn := a.dA
		be.MatMul(false, false, N, D, I, 1, dg, I, ly.gate.w, D, 0, dhn, D)
		be.MatMul(false, false, N, D, I, 1, du, I, ly.up.w, D, 1, dhn, D)
		if mods[tGate] != nil {
			m.loraBwd(l, tGate, la.hn, dg, dhn, N)
		}
		if mods[tUp] != nil {
			m.loraBwd(l, tUp, la.hn, du, dhn, N)
		}
		be.RMSNormBackward(dx, nw, dhn, la.h, ly.postNorm.w, la.rstd2, N, D)
		// attention
		datt := a.dA
		be.MatMul(false, false, N, D, D, 1, dx, D, ly.o.w, D, 0, datt, D)
		if mods[tO] != nil {
			m.loraBwd(l, tO, la.att, dx, datt, N)
		}
		if l == 0 && !lowerAttn(mods) {
			break // nothing below needs a gradient
		}
		be.AttentionBackward(a.dq, a.dk, a.dv, datt, la.att, la.lse, la.q, la.k, la.v, a.seg, shape)
		be.RoPE(a.dq, a.pos, N, NH, HD, m.ropeCos, m.ropeSin, true)
		be.RoPE(a.dk, a.pos, N, NKV, HD, m.ropeCos, m.ropeSin, true)
		if l == 0 {
			// the embeddings are frozen: only the adapters' own gradients
			dxn := a.dA
			for k, dy := range [...]backend.Buffer{a.dq, a.dk, a.dv} {
				if mods[k] != nil {
					m.loraBwdNoDX(l, k, la.xn1, dy, dxn, N)
				}
			}
			break
		}
		dxn := a.dA
		be.MatMul(false, false, N, D, D, 1, a.dq, D, ly.q.w, D, 0, dxn, D)
		be.MatMul(false, false, N, D, Dkv, 1, a.dk, Dkv, ly.k.w, D, 1, dxn, D)
		be.MatMul(false, false, N, D, Dkv, 1, a.dv, Dkv, ly.v.w, D, 1, dxn, D)
		if mods[tQ] != nil {
			m.loraBwd(l, tQ, la.xn1, a.dq, dxn, N)
		}
		if mods[tK] != nil {
			m.loraBwd(l, tK, la.xn1, a.dk, dxn, N)
		}
		if mods[tV] != nil {
			m.loraBwd(l, tV, la.xn1, a.dv, dxn, N)
		}
		be.RMSNormBackward(dx, nw, dxn, a.xs[l], ly.inNorm.w, la.rstd1, N, D)
	}
	return lossSum, n, nil
}

// lowerAttn reports whether layer mods has an adapter on q, k or v.
func lowerAttn(mods *[numTargets]*loraMod) bool {
	return mods[tQ] != nil || mods[tK] != nil || mods[tV] != nil
}

// loraBwdNoDX is loraBwd where the input gradient is not needed (layer 0's
// q/k/v: below them are only frozen embeddings); dx is scratch.
func (m *Model) loraBwdNoDX(l, kind int, x, dy, scratch backend.Buffer, N int) {
	m.loraBwd(l, kind, x, dy, scratch, N)
}

package cpu

import (
	"math"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"gonum.org/v1/gonum/blas/gonum"
)

// segStarts fills lo[i] with the first key position row i may see, and
// reports whether the segment ids of the row are contiguous runs (then
// every key in [lo[i], i] is visible and no per-key check is needed).
func segStarts(lo []int32, seg []int32) (contiguous bool) {
	T := len(seg)
	seen := make(map[int32]bool, 8)
	start := 0
	contiguous = true
	for i := 0; i < T; i++ {
		if i > 0 && seg[i] != seg[i-1] {
			seen[seg[i-1]] = true
			start = i
			if seen[seg[i]] {
				contiguous = false
			}
		}
		lo[i] = int32(start)
	}
	if !contiguous {
		clear(lo)
	}
	return contiguous
}

// attnGemmOff disables the SGEMM attention path (tests compare the two).
var attnGemmOff = false

func useGemmAttention() bool { return haveKernel && !attnGemmOff }

// dot and axpy use gonum's assembly kernels (SSE on amd64), 2-4x faster
// than a Go loop for head-sized vectors.
func dot(a, b []float32) float32 { return gonum.Implementation{}.Sdot(len(a), a, 1, b, 1) }

func axpy(alpha float32, x, y []float32) { gonum.Implementation{}.Saxpy(len(x), alpha, x, 1, y, 1) }

// Attention: causal, segment-restricted softmax attention (see backend).
// Work is split over (row, kv head) pairs; each task handles the query
// heads of its group, so the backward pass can own dk and dv rows.
func (c *CPU) attention(out, lse, q, k, v []float32, seg []int32, s backend.AttnShape) {
	B, T, NH, NKV, HD := s.B, s.T, s.NH, s.NKV, s.HD
	grp := NH / NKV
	scale := float32(1 / math.Sqrt(float64(HD)))
	qs, ks := NH*HD, NKV*HD
	c.parallel(B*NKV, 1, func(tlo, thi int) {
		lo := make([]int32, T)
		p := make([]float32, T)
		var runs [][2]int
		var S *[]float32
		for task := tlo; task < thi; task++ {
			b, g := task/NKV, task%NKV
			sg := seg[b*T : (b+1)*T]
			contig := segStarts(lo, sg)
			if contig && useGemmAttention() {
				if S == nil {
					S = getBuf(T * T)
					defer packPool.Put(S)
				}
				runs = segRuns(lo, runs)
				attnForwardGemm(out, lse, q, k, v, b, g, runs, s, *S)
				continue
			}
			for h := g * grp; h < (g+1)*grp; h++ {
				for i := 0; i < T; i++ {
					qi := q[(b*T+i)*qs+h*HD : (b*T+i)*qs+(h+1)*HD]
					mx := float32(math.Inf(-1))
					for j := int(lo[i]); j <= i; j++ {
						if !contig && sg[j] != sg[i] {
							continue
						}
						sc := scale * dot(qi, k[(b*T+j)*ks+g*HD:(b*T+j)*ks+(g+1)*HD])
						p[j] = sc
						mx = max(mx, sc)
					}
					var sum float32
					for j := int(lo[i]); j <= i; j++ {
						if !contig && sg[j] != sg[i] {
							continue
						}
						e := expf(p[j] - mx)
						p[j] = e
						sum += e
					}
					lse[(b*NH+h)*T+i] = mx + float32(math.Log(float64(sum)))
					oi := out[(b*T+i)*qs+h*HD : (b*T+i)*qs+(h+1)*HD]
					clear(oi)
					inv := 1 / sum
					for j := int(lo[i]); j <= i; j++ {
						if !contig && sg[j] != sg[i] {
							continue
						}
						axpy(p[j]*inv, v[(b*T+j)*ks+g*HD:(b*T+j)*ks+(g+1)*HD], oi)
					}
				}
			}
		}
	})
}

// AttentionBackward recomputes the probabilities from lse and writes dq,
// dk, dv.
func (c *CPU) attentionBackward(dq, dk, dv, dout, out, lse, q, k, v []float32, seg []int32, s backend.AttnShape) {
	B, T, NH, NKV, HD := s.B, s.T, s.NH, s.NKV, s.HD
	grp := NH / NKV
	scale := float32(1 / math.Sqrt(float64(HD)))
	qs, ks := NH*HD, NKV*HD
	c.parallel(B*NKV, 1, func(tlo, thi int) {
		lo := make([]int32, T)
		var runs [][2]int
		var P, dP *[]float32
		for task := tlo; task < thi; task++ {
			b, g := task/NKV, task%NKV
			sg := seg[b*T : (b+1)*T]
			contig := segStarts(lo, sg)
			if contig && useGemmAttention() {
				if P == nil {
					P, dP = getBuf(T*T), getBuf(T*T)
					defer packPool.Put(P)
					defer packPool.Put(dP)
				}
				runs = segRuns(lo, runs)
				attnBackwardGemm(dq, dk, dv, dout, out, lse, q, k, v, b, g, runs, s, *P, *dP)
				continue
			}
			for i := 0; i < T; i++ {
				clear(dk[(b*T+i)*ks+g*HD : (b*T+i)*ks+(g+1)*HD])
				clear(dv[(b*T+i)*ks+g*HD : (b*T+i)*ks+(g+1)*HD])
			}
			for h := g * grp; h < (g+1)*grp; h++ {
				for i := 0; i < T; i++ {
					off := (b*T+i)*qs + h*HD
					qi, doi, oi := q[off:off+HD], dout[off:off+HD], out[off:off+HD]
					dqi := dq[off : off+HD]
					clear(dqi)
					l := lse[(b*NH+h)*T+i]
					D := dot(doi, oi)
					for j := int(lo[i]); j <= i; j++ {
						if !contig && sg[j] != sg[i] {
							continue
						}
						koff := (b*T+j)*ks + g*HD
						kj, vj := k[koff:koff+HD], v[koff:koff+HD]
						pj := expf(scale*dot(qi, kj) - l)
						dp := dot(doi, vj)
						ds := pj * (dp - D) * scale
						axpy(ds, kj, dqi)
						axpy(ds, qi, dk[koff:koff+HD])
						axpy(pj, doi, dv[koff:koff+HD])
					}
				}
			}
		}
	})
}

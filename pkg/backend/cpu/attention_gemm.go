package cpu

import (
	"math"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// The attention of one (row, kv head) task through the blocked SGEMM, used
// when the assembly kernel is available and the row's segments are
// contiguous runs (packed batches): per segment of length L and per query
// head, the L×L score block is a matrix product, masked causally. The
// upper triangle is computed and thrown away, which the SGEMM's speed pays
// for many times over compared with per-pair dot products.

func gemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmBlocked(serial, 1, transA, transB, m, n, k, alpha, a, lda, bmat{f: b}, ldb, beta, c, ldc)
}

// segRuns lists the [start, end) runs of a row whose segments are
// contiguous (lo from segStarts).
func segRuns(lo []int32, runs [][2]int) [][2]int {
	runs = runs[:0]
	T := len(lo)
	for i := 0; i < T; {
		j := i + 1
		for j < T && int(lo[j]) == i {
			j++
		}
		runs = append(runs, [2]int{i, j})
		i = j
	}
	return runs
}

func attnForwardGemm(out, lse, q, k, v []float32, b, g int, runs [][2]int, s backend.AttnShape, S []float32) {
	T, NH, NKV, HD := s.T, s.NH, s.NKV, s.HD
	grp := NH / NKV
	scale := float32(1 / math.Sqrt(float64(HD)))
	qs, ks := NH*HD, NKV*HD
	for h := g * grp; h < (g+1)*grp; h++ {
		for _, r := range runs {
			st, L := r[0], r[1]-r[0]
			qo := (b*T+st)*qs + h*HD
			ko := (b*T+st)*ks + g*HD
			gemmSerial(false, true, L, L, HD, scale, q[qo:], qs, k[ko:], ks, 0, S, L)
			for i := 0; i < L; i++ {
				row := S[i*L : i*L+L]
				mx := row[0]
				for _, x := range row[1 : i+1] {
					mx = max(mx, x)
				}
				expSub(row[:i+1], mx)
				var sum float32
				for _, e := range row[:i+1] {
					sum += e
				}
				lse[(b*NH+h)*T+st+i] = mx + float32(math.Log(float64(sum)))
				inv := 1 / sum
				for j := 0; j <= i; j++ {
					row[j] *= inv
				}
				clear(row[i+1:])
			}
			gemmSerial(false, false, L, HD, L, 1, S, L, v[ko:], ks, 0, out[qo:], qs)
		}
	}
}

func attnBackwardGemm(dq, dk, dv, dout, out, lse, q, k, v []float32, b, g int, runs [][2]int, s backend.AttnShape, P, dP []float32) {
	T, NH, NKV, HD := s.T, s.NH, s.NKV, s.HD
	grp := NH / NKV
	scale := float32(1 / math.Sqrt(float64(HD)))
	qs, ks := NH*HD, NKV*HD
	for i := 0; i < T; i++ {
		clear(dk[(b*T+i)*ks+g*HD : (b*T+i)*ks+(g+1)*HD])
		clear(dv[(b*T+i)*ks+g*HD : (b*T+i)*ks+(g+1)*HD])
	}
	for h := g * grp; h < (g+1)*grp; h++ {
		for _, r := range runs {
			st, L := r[0], r[1]-r[0]
			qo := (b*T+st)*qs + h*HD
			ko := (b*T+st)*ks + g*HD
			gemmSerial(false, true, L, L, HD, scale, q[qo:], qs, k[ko:], ks, 0, P, L)
			gemmSerial(false, true, L, L, HD, 1, dout[qo:], qs, v[ko:], ks, 0, dP, L)
			for i := 0; i < L; i++ {
				l := lse[(b*NH+h)*T+st+i]
				o := qo + i*qs
				D := dot(dout[o:o+HD], out[o:o+HD])
				pr, dr := P[i*L:i*L+L], dP[i*L:i*L+L]
				expSub(pr[:i+1], l)
				for j, p := range pr[:i+1] {
					dr[j] = p * (dr[j] - D)
				}
				clear(pr[i+1:])
				clear(dr[i+1:])
			}
			gemmSerial(false, false, L, HD, L, scale, dP, L, k[ko:], ks, 0, dq[qo:], qs)
			gemmSerial(true, false, L, HD, L, scale, dP, L, q[qo:], qs, 1, dk[ko:], ks)
			gemmSerial(true, false, L, HD, L, 1, P, L, dout[qo:], qs, 1, dv[ko:], ks)
		}
	}
}

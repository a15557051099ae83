//go:build !amd64 || purego

package cpu

func kern6x16(kc int, a, b, c *float32, ldc int) { panic("cpu: no assembly kernel") }

const haveKernel = false

func expSubAVX(x *float32, n int, m float32, tab *float32) { panic("cpu: no assembly kernel") }

func dotAVX(a, b *float32, n int) float32 { panic("cpu: no assembly kernel") }

func dotHalfAVX(a *float32, b *uint16, n int, f16 int) float32 { panic("cpu: no assembly kernel") }

const haveF16C = false

var have512 = false

func dot512(a, b *float32, n int) float32 { panic("cpu: no assembly kernel") }

func dotHalf512(a *float32, b *uint16, n int, f16 int) float32 { panic("cpu: no assembly kernel") }
func dotHalf512x4(a *float32, b *uint16, ldb int, n int, f16 int, out *[4]float32) {
	panic("cpu: no assembly kernel")
}
func dot512x4(a, b *float32, ldb int, n int, out *[4]float32) { panic("cpu: no assembly kernel") }
func axpy512(alpha float32, x, y *float32, n int)             { panic("cpu: no assembly kernel") }

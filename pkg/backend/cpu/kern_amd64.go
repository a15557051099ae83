//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

// kern6x16 is the AVX2/FMA micro-kernel (kern_amd64.s).
//
//go:noescape
func kern6x16(kc int, a, b, c *float32, ldc int)

var haveKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasAVX

// expSubAVX: x[i] = exp(x[i]-m) for n (multiple of 8) elements (kern_amd64.s).
//
//go:noescape
func expSubAVX(x *float32, n int, m float32, tab *float32)

// dotAVX: sum of a[i]*b[i] for n (a multiple of 32) elements (kern_amd64.s).
//
//go:noescape
func dotAVX(a, b *float32, n int) float32

// dotHalfAVX: sum of a[i]*widen(b[i]) for n (a multiple of 32) half-precision
// b (bf16, or IEEE half when f16 != 0) (kern_amd64.s).
//
//go:noescape
func dotHalfAVX(a *float32, b *uint16, n int, f16 int) float32

// haveF16C: VCVTPH2PS is available for dotHalfAVX's IEEE-half path.
var haveF16C = haveKernel && cpu.X86.HasF16C

// dot512 and dotHalf512: dotAVX and dotHalfAVX on 16-lane AVX-512
// registers for n a multiple of 64, with the weight row prefetched ahead
// (kern_amd64.s). Their order of summation differs from the AVX2 kernels',
// so one machine uses one family for every one-row product (have512).
//
//go:noescape
func dot512(a, b *float32, n int) float32

//go:noescape
func dotHalf512(a *float32, b *uint16, n int, f16 int) float32

// have512 selects the AVX-512 dot products (a variable for the tests).
var have512 = haveKernel && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

// dotHalf512x4: dotHalf512 of a with four rows of b (stride ldb elements)
// at once, into out (kern_amd64.s).
//
//go:noescape
func dotHalf512x4(a *float32, b *uint16, ldb int, n int, f16 int, out *[4]float32)

// dot512x4: dot512 of a with four rows of b (stride ldb) at once, into out
// (kern_amd64.s).
//
//go:noescape
func dot512x4(a, b *float32, ldb int, n int, out *[4]float32)

// axpy512: y += alpha*x for n a multiple of 16 (kern_amd64.s).
//
//go:noescape
func axpy512(alpha float32, x, y *float32, n int)

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

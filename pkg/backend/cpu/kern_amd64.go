//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

// kern6x16 is the AVX2/FMA micro-kernel (kern_amd64.s).
//
//go:noescape
func kern6x16(kc int, a, b, c *float32, ldc int)

var haveKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasAVX

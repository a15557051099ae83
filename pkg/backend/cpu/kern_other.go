//go:build !amd64 || purego

package cpu

func kern6x16(kc int, a, b, c *float32, ldc int) { panic("cpu: no assembly kernel") }

const haveKernel = false

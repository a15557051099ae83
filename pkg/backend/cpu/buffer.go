package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/x448/float16"
)

// store is the CPU's storage block: a plain Go slice of the buffer's dtype
// (host memory, no copies: an op gets its slice by indexing).
type store struct {
	f32 []float32
	u16 []uint16 // BF16, F16
	i32 []int32
	ro  bool // wraps read-only memory (a memory-mapped file)
}

func init() {
	backend.Register("cpu", func(o backend.Options) (backend.Backend, error) { return New(o.Threads), nil })
}

func storeOf(b backend.Buffer) *store {
	s, ok := b.Storage().(*store)
	if !ok {
		panic(fmt.Sprintf("cpu: buffer of %T is not a CPU buffer", b.Storage()))
	}
	return s
}

// F32 is the float32 slice behind an F32 CPU buffer (no copy: writes go to
// the buffer). It panics on another dtype or a foreign buffer. For tests
// and host-side code that knows it runs on the CPU backend.
func F32(b backend.Buffer) []float32 {
	if b.DType() != backend.F32 {
		panic("cpu: F32 of a " + b.DType().String() + " buffer")
	}
	o, n := b.Offset(), b.Len()
	return storeOf(b).f32[o : o+n : o+n]
}

// I32 is the int32 slice behind an I32 CPU buffer.
func I32(b backend.Buffer) []int32 {
	if b.DType() != backend.I32 {
		panic("cpu: I32 of a " + b.DType().String() + " buffer")
	}
	o, n := b.Offset(), b.Len()
	return storeOf(b).i32[o : o+n : o+n]
}

// U16 is the raw half-precision slice behind a BF16 or F16 CPU buffer.
func U16(b backend.Buffer) []uint16 {
	if b.DType() != backend.BF16 && b.DType() != backend.F16 {
		panic("cpu: U16 of a " + b.DType().String() + " buffer")
	}
	o, n := b.Offset(), b.Len()
	return storeOf(b).u16[o : o+n : o+n]
}

// Wrap makes a CPU buffer over a host slice (no copy).
func Wrap(v []float32) backend.Buffer {
	return backend.NewBuffer(&store{f32: v}, backend.F32, 0, len(v))
}

// WrapInt32 makes an I32 CPU buffer over a host slice (no copy).
func WrapInt32(v []int32) backend.Buffer {
	return backend.NewBuffer(&store{i32: v}, backend.I32, 0, len(v))
}

// Alloc returns a zeroed buffer.
func (c *CPU) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	if n < 0 {
		return backend.Buffer{}, fmt.Errorf("cpu: alloc of %d elements", n)
	}
	s := &store{}
	switch dt {
	case backend.F32:
		s.f32 = make([]float32, n)
	case backend.BF16, backend.F16:
		s.u16 = make([]uint16, n)
	case backend.I32:
		s.i32 = make([]int32, n)
	default:
		return backend.Buffer{}, fmt.Errorf("cpu: alloc of dtype %v", dt)
	}
	return backend.NewBuffer(s, dt, 0, n), nil
}

// Free drops nothing: the garbage collector reclaims host memory.
func (c *CPU) Free(backend.Buffer) {}

// WrapHost implements backend.HostMapper: a read-only buffer over raw
// little-endian data (memory-mapped safetensors), when aligned.
func (c *CPU) WrapHost(dt backend.DType, src []byte) (backend.Buffer, bool) {
	sz := dt.Size()
	if sz == 0 || len(src)%sz != 0 || !littleEndian {
		return backend.Buffer{}, false
	}
	n := len(src) / sz
	if n == 0 {
		b, _ := c.Alloc(dt, 0)
		return b, true
	}
	p := unsafe.Pointer(unsafe.SliceData(src))
	if uintptr(p)%uintptr(sz) != 0 {
		return backend.Buffer{}, false
	}
	s := &store{ro: true}
	switch dt {
	case backend.F32:
		s.f32 = unsafe.Slice((*float32)(p), n)
	case backend.BF16, backend.F16:
		s.u16 = unsafe.Slice((*uint16)(p), n)
	case backend.I32:
		s.i32 = unsafe.Slice((*int32)(p), n)
	}
	return backend.NewBuffer(s, dt, 0, n), true
}

var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

func checkLen(what string, b backend.Buffer, n int) {
	if b.Len() != n {
		panic(fmt.Sprintf("cpu: %s: buffer of %d elements, data of %d", what, b.Len(), n))
	}
}

func writable(b backend.Buffer) *store {
	s := storeOf(b)
	if s.ro {
		panic("cpu: write to a read-only (memory-mapped) buffer")
	}
	return s
}

// bf16 widens a bfloat16 exactly.
func bf16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// toBF16 rounds to nearest even (torch's rule); NaN stays NaN.
func toBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if f != f {
		return uint16(bits>>16) | 0x40
	}
	return uint16((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16)
}

// f16 widens an IEEE half exactly, through a 65,536-entry table (256 KiB,
// filled once from x448/float16): a load instead of a branchy conversion
// per element, which decoding with f16 weights does for every weight.
func f16(h uint16) float32 { return f16Table[h] }

var f16Table = func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for i := range t {
		t[i] = float16.Frombits(uint16(i)).Float32()
	}
	return t
}()

// widen converts half-precision values to float32.
func widen(dt backend.DType, dst []float32, src []uint16) {
	if dt == backend.BF16 {
		for i, h := range src {
			dst[i] = bf16(h)
		}
		return
	}
	for i, h := range src {
		dst[i] = f16(h)
	}
}

// Upload copies src into dst, converting.
func (c *CPU) Upload(dst backend.Buffer, src []float32) {
	checkLen("upload", dst, len(src))
	s := writable(dst)
	o := dst.Offset()
	switch dst.DType() {
	case backend.F32:
		copy(s.f32[o:o+len(src)], src)
	case backend.BF16:
		d := s.u16[o : o+len(src)]
		for i, x := range src {
			d[i] = toBF16(x)
		}
	case backend.F16:
		d := s.u16[o : o+len(src)]
		for i, x := range src {
			d[i] = float16.Fromfloat32(x).Bits()
		}
	default:
		panic("cpu: upload of float32 into " + dst.DType().String())
	}
}

// UploadInt32 copies src into an I32 buffer.
func (c *CPU) UploadInt32(dst backend.Buffer, src []int32) {
	checkLen("upload", dst, len(src))
	writable(dst)
	copy(I32(dst), src)
}

// UploadRaw copies little-endian elements of dst's dtype.
func (c *CPU) UploadRaw(dst backend.Buffer, src []byte) {
	sz := dst.DType().Size()
	checkLen("raw upload", dst, len(src)/max(sz, 1))
	if len(src) != dst.Len()*sz {
		panic("cpu: raw upload: byte count is not a whole number of elements")
	}
	s := writable(dst)
	o, n := dst.Offset(), dst.Len()
	switch dst.DType() {
	case backend.F32:
		d := s.f32[o : o+n]
		if littleEndian {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*n), src)
			return
		}
		for i := range d {
			d[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case backend.I32:
		d := s.i32[o : o+n]
		for i := range d {
			d[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case backend.BF16, backend.F16:
		d := s.u16[o : o+n]
		for i := range d {
			d[i] = binary.LittleEndian.Uint16(src[2*i:])
		}
	}
}

// Download copies src into dst as float32.
func (c *CPU) Download(dst []float32, src backend.Buffer) {
	checkLen("download", src, len(dst))
	switch src.DType() {
	case backend.F32:
		copy(dst, F32(src))
	case backend.BF16, backend.F16:
		widen(src.DType(), dst, U16(src))
	default:
		panic("cpu: download of " + src.DType().String() + " as float32")
	}
}

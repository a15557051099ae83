// Package gguf writes and reads GGUF version 3 files, the model format of
// llama.cpp and Ollama, and exports a model directory (config.json,
// safetensors, tokenizer.model) to it (ExportMain, `trainer export`). The
// layout is described in docs/formats.md.
//
// A file is: the magic "GGUF", version 3, the number of tensors and of
// metadata pairs, the metadata (typed key/value pairs), the tensor
// descriptions (name, dimensions innermost first, ggml type, offset), then
// after padding to the alignment (general.alignment, default 32) the
// tensor data, each tensor starting at an aligned offset.
package gguf

import (
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Magic is the first four bytes of a GGUF file.
const Magic = "GGUF"

// Version is the GGUF version this package writes (and the one it reads;
// version 2 has the same layout and is read too).
const Version = 3

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// ValueType is the type of a metadata value.
type ValueType uint32

// Metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var scalarSize = map[ValueType]int{
	TypeUint8: 1, TypeInt8: 1, TypeUint16: 2, TypeInt16: 2, TypeUint32: 4, TypeInt32: 4,
	TypeFloat32: 4, TypeBool: 1, TypeUint64: 8, TypeInt64: 8, TypeFloat64: 8,
}

// GGMLType is a tensor's element type (ggml_type).
type GGMLType uint32

// Tensor types this package knows.
const (
	F32  GGMLType = 0
	F16  GGMLType = 1
	Q8_0 GGMLType = 8
	BF16 GGMLType = 30
)

// Q8Block is the number of values in one Q8_0 block: an fp16 scale and 32
// int8 quants (34 bytes).
const Q8Block = 32

func (t GGMLType) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q8_0:
		return "Q8_0"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// RowBytes is the size of n values of type t (n a multiple of the block
// size for block types).
func (t GGMLType) RowBytes(n int64) (int64, error) {
	switch t {
	case F32:
		return 4 * n, nil
	case F16, BF16:
		return 2 * n, nil
	case Q8_0:
		if n%Q8Block != 0 {
			return 0, fmt.Errorf("Q8_0 rows need a multiple of %d values, got %d", Q8Block, n)
		}
		return n / Q8Block * 34, nil
	}
	return 0, fmt.Errorf("tensor type %s not supported", t)
}

// KV is one metadata pair. Value is one of uint8, int8, uint16, int16,
// uint32, int32, float32, bool, string, uint64, int64, float64, or a slice
// of one of those ([]string, []float32, []int32, ...).
type KV struct {
	Key   string
	Value any
}

// TensorInfo describes one tensor. Dims are ggml's ne: innermost
// (contiguous) dimension first, so a Hugging Face weight [out, in] has
// Dims [in, out].
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   GGMLType
	Offset uint64 // from the start of the data section
}

// NumElements is the product of the dimensions.
func (t TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// NumBytes is the tensor's data size.
func (t TensorInfo) NumBytes() (uint64, error) {
	if len(t.Dims) == 0 {
		return 0, fmt.Errorf("tensor %q has no dimensions", t.Name)
	}
	row, err := t.Type.RowBytes(int64(t.Dims[0]))
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return uint64(row) * (t.NumElements() / t.Dims[0]), nil
}

// EncodeF16 converts to IEEE half precision, rounding to nearest even.
func EncodeF16(dst []byte, v []float32) []byte {
	for _, x := range v {
		h := uint16(float16.Fromfloat32(x))
		dst = append(dst, byte(h), byte(h>>8))
	}
	return dst
}

// QuantizeQ8_0 appends the Q8_0 blocks of v (len a multiple of 32): per
// block of 32 values the scale d = max|x|/127 stored as fp16, and the
// quants round(x/d) (halves away from zero) as int8; an all-zero block has
// d = 0 and zero quants.
func QuantizeQ8_0(dst []byte, v []float32) []byte {
	for b := 0; b+Q8Block <= len(v); b += Q8Block {
		blk := v[b : b+Q8Block]
		amax := float32(0)
		for _, x := range blk {
			amax = max(amax, float32(math.Abs(float64(x))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		h := uint16(float16.Fromfloat32(d))
		dst = append(dst, byte(h), byte(h>>8))
		for _, x := range blk {
			q := math.Round(float64(x * id))
			dst = append(dst, byte(int8(q)))
		}
	}
	return dst
}

// Dequantize decodes n values of type t from b.
func Dequantize(t GGMLType, b []byte, n int) ([]float32, error) {
	nb, err := t.RowBytes(int64(n))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != nb {
		return nil, fmt.Errorf("%s data of %d bytes for %d values, want %d", t, len(b), n, nb)
	}
	out := make([]float32, n)
	switch t {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = float16.Frombits(uint16(b[2*i]) | uint16(b[2*i+1])<<8).Float32()
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(uint16(b[2*i])|uint16(b[2*i+1])<<8) << 16)
		}
	case Q8_0:
		for blk := 0; blk < n/Q8Block; blk++ {
			p := b[blk*34:]
			d := float16.Frombits(uint16(p[0]) | uint16(p[1])<<8).Float32()
			for i := 0; i < Q8Block; i++ {
				out[blk*Q8Block+i] = d * float32(int8(p[2+i]))
			}
		}
	}
	return out, nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

func align(n, a uint64) uint64 { return (n + a - 1) / a * a }

package gguf

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Writer streams a GGUF file: the header (metadata and tensor
// descriptions, given up front) is written by NewWriter, then each
// tensor's data in order with WriteTensor.
type Writer struct {
	w      io.Writer
	infos  []TensorInfo
	next   int
	pos    uint64 // bytes written into the data section
	align  uint64
	closed bool
}

// NewWriter writes the header to w. The tensors' offsets are assigned here
// (each aligned); infos' Offset fields are ignored.
func NewWriter(w io.Writer, kvs []KV, infos []TensorInfo) (*Writer, error) {
	al := uint64(DefaultAlignment)
	for _, kv := range kvs {
		if kv.Key == "general.alignment" {
			v, ok := kv.Value.(uint32)
			if !ok || v == 0 || v&(v-1) != 0 {
				return nil, fmt.Errorf("gguf: general.alignment must be a power-of-two uint32")
			}
			al = uint64(v)
		}
	}
	var h []byte
	h = append(h, Magic...)
	h = binary.LittleEndian.AppendUint32(h, Version)
	h = binary.LittleEndian.AppendUint64(h, uint64(len(infos)))
	h = binary.LittleEndian.AppendUint64(h, uint64(len(kvs)))
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return nil, fmt.Errorf("gguf: duplicate key %q", kv.Key)
		}
		seen[kv.Key] = true
		h = appendString(h, kv.Key)
		var err error
		if h, err = appendValue(h, kv.Value); err != nil {
			return nil, fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	laid := make([]TensorInfo, len(infos))
	off := uint64(0)
	names := map[string]bool{}
	for i, ti := range infos {
		if names[ti.Name] {
			return nil, fmt.Errorf("gguf: duplicate tensor %q", ti.Name)
		}
		names[ti.Name] = true
		nb, err := ti.NumBytes()
		if err != nil {
			return nil, err
		}
		ti.Offset = off
		laid[i] = ti
		h = appendString(h, ti.Name)
		h = binary.LittleEndian.AppendUint32(h, uint32(len(ti.Dims)))
		for _, d := range ti.Dims {
			h = binary.LittleEndian.AppendUint64(h, d)
		}
		h = binary.LittleEndian.AppendUint32(h, uint32(ti.Type))
		h = binary.LittleEndian.AppendUint64(h, off)
		off = align(off+nb, al)
	}
	for uint64(len(h))%al != 0 {
		h = append(h, 0)
	}
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	return &Writer{w: w, infos: laid, align: al}, nil
}

// Infos returns the tensor descriptions with their offsets.
func (w *Writer) Infos() []TensorInfo { return w.infos }

// WriteTensor writes the data of the next tensor, which must be name.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.next >= len(w.infos) {
		return fmt.Errorf("gguf: tensor %q written after the last one", name)
	}
	ti := w.infos[w.next]
	if ti.Name != name {
		return fmt.Errorf("gguf: tensor %q written where %q comes", name, ti.Name)
	}
	nb, _ := ti.NumBytes()
	if uint64(len(data)) != nb {
		return fmt.Errorf("gguf: tensor %q: %d bytes, want %d", name, len(data), nb)
	}
	if pad := ti.Offset - w.pos; pad > 0 {
		if _, err := w.w.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	if _, err := w.w.Write(data); err != nil {
		return err
	}
	w.pos = ti.Offset + nb
	w.next++
	return nil
}

// Close checks that every tensor was written and pads the file's end to
// the alignment.
func (w *Writer) Close() error {
	if w.next != len(w.infos) {
		return fmt.Errorf("gguf: %d of %d tensors written", w.next, len(w.infos))
	}
	if pad := align(w.pos, w.align) - w.pos; pad > 0 {
		if _, err := w.w.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return nil
}

func appendString(h []byte, s string) []byte {
	h = binary.LittleEndian.AppendUint64(h, uint64(len(s)))
	return append(h, s...)
}

func typeOf(v any) (ValueType, bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, true
	case int8:
		return TypeInt8, true
	case uint16:
		return TypeUint16, true
	case int16:
		return TypeInt16, true
	case uint32:
		return TypeUint32, true
	case int32:
		return TypeInt32, true
	case float32:
		return TypeFloat32, true
	case bool:
		return TypeBool, true
	case string:
		return TypeString, true
	case uint64:
		return TypeUint64, true
	case int64:
		return TypeInt64, true
	case float64:
		return TypeFloat64, true
	}
	return 0, false
}

func appendScalar(h []byte, v any) []byte {
	le := binary.LittleEndian
	switch x := v.(type) {
	case uint8:
		return append(h, x)
	case int8:
		return append(h, byte(x))
	case uint16:
		return le.AppendUint16(h, x)
	case int16:
		return le.AppendUint16(h, uint16(x))
	case uint32:
		return le.AppendUint32(h, x)
	case int32:
		return le.AppendUint32(h, uint32(x))
	case float32:
		return le.AppendUint32(h, math.Float32bits(x))
	case bool:
		if x {
			return append(h, 1)
		}
		return append(h, 0)
	case string:
		return appendString(h, x)
	case uint64:
		return le.AppendUint64(h, x)
	case int64:
		return le.AppendUint64(h, uint64(x))
	case float64:
		return le.AppendUint64(h, math.Float64bits(x))
	}
	panic("unreachable")
}

func appendArray[T any](h []byte, t ValueType, xs []T) []byte {
	h = binary.LittleEndian.AppendUint32(h, uint32(TypeArray))
	h = binary.LittleEndian.AppendUint32(h, uint32(t))
	h = binary.LittleEndian.AppendUint64(h, uint64(len(xs)))
	for _, x := range xs {
		h = appendScalar(h, any(x))
	}
	return h
}

func appendValue(h []byte, v any) ([]byte, error) {
	if t, ok := typeOf(v); ok {
		h = binary.LittleEndian.AppendUint32(h, uint32(t))
		return appendScalar(h, v), nil
	}
	switch x := v.(type) {
	case []string:
		return appendArray(h, TypeString, x), nil
	case []float32:
		return appendArray(h, TypeFloat32, x), nil
	case []int32:
		return appendArray(h, TypeInt32, x), nil
	case []uint32:
		return appendArray(h, TypeUint32, x), nil
	case []uint8:
		return appendArray(h, TypeUint8, x), nil
	case []int64:
		return appendArray(h, TypeInt64, x), nil
	case []bool:
		return appendArray(h, TypeBool, x), nil
	}
	return nil, fmt.Errorf("value of type %T not supported", v)
}

package safetensors

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// Begin/Write stream a tensor in pieces; the file equals WriteFile's.
func TestBeginWritePieces(t *testing.T) {
	dir := t.TempDir()
	a := Tensor{Name: "a", DType: U8, Shape: []int64{10}, Data: []byte("0123456789")}
	e := Tensor{Name: "e", DType: F32, Shape: []int64{0}, Data: nil}
	b := Tensor{Name: "b", DType: U8, Shape: []int64{3}, Data: []byte("xyz")}
	if err := WriteFile(filepath.Join(dir, "whole.safetensors"), []Tensor{a, e, b}, nil); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(filepath.Join(dir, "pieces.safetensors"), []TensorInfo{a.Info(), e.Info(), b.Info()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{w.Begin("a")}
	for _, p := range []string{"012", "", "3456", "789"} {
		_, err := w.Write([]byte(p))
		steps = append(steps, err)
	}
	steps = append(steps, w.Begin("e"), w.WriteTensor("b", []byte("xyz")), w.Commit())
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	f1, _ := Open(filepath.Join(dir, "whole.safetensors"))
	f2, _ := Open(filepath.Join(dir, "pieces.safetensors"))
	defer f1.Close()
	defer f2.Close()
	if !bytes.Equal(f1.mapping, f2.mapping) {
		t.Error("streamed file differs")
	}
	d, _ := f2.Bytes("a")
	f2.Release(d) // pages dropped, data still there
	f2.Release([]byte("not mapped"))
	if string(d) != "0123456789" {
		t.Errorf("after Release: %q", d)
	}
}

func TestBeginWriteErrors(t *testing.T) {
	dir := t.TempDir()
	infos := []TensorInfo{{Name: "a", DType: U8, Shape: []int64{4}}, {Name: "b", DType: U8, Shape: []int64{1}}}
	w, _ := NewWriter(filepath.Join(dir, "x.safetensors"), infos, nil)
	if _, err := w.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), "without Begin") {
		t.Errorf("write before begin: %v", err)
	}
	if err := w.Begin("b"); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("out of order: %v", err)
	}
	w.Begin("a")
	if _, err := w.Write([]byte("12345")); err == nil || !strings.Contains(err.Error(), "more than declared") {
		t.Errorf("too long: %v", err)
	}
	w.Write([]byte("12"))
	if err := w.Begin("b"); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("begin while incomplete: %v", err)
	}
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "missing 2 bytes") {
		t.Errorf("commit while incomplete: %v", err)
	}
}

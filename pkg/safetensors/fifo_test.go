package safetensors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A sharded index naming a FIFO (or the index itself being one) is an
// error at once; it used to block forever in open.
func TestShardFIFORefused(t *testing.T) {
	d := t.TempDir()
	v := make([]float32, 8)
	data, _ := EncodeFloat32(F32, v)
	if err := WriteModel(d, []Tensor{{Name: "a", DType: F32, Shape: []int64{8}, Data: data}, {Name: "b", DType: F32, Shape: []int64{8}, Data: data}}, nil, 40); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(d, IndexName))
	var idx Index
	json.Unmarshal(b, &idx)
	var shard string
	for _, s := range idx.WeightMap {
		shard = s
	}
	p := filepath.Join(d, shard)
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := OpenDir(d)
		done <- err
	}()
	err := <-done // a hang here is the bug (the test's timeout reports it)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("got %v", err)
	}
	// The index itself a FIFO.
	d2 := t.TempDir()
	syscall.Mkfifo(filepath.Join(d2, IndexName), 0o644)
	if _, err := OpenDir(d2); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("index FIFO: %v", err)
	}
	// A single file that is a FIFO.
	if _, err := Open(filepath.Join(d2, IndexName)); err == nil {
		t.Fatal("Open took a FIFO")
	}
}

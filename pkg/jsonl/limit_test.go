package jsonl

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// endless is n bytes of 'a' (no newline), made on the fly.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), e.n)
	for i := range p[:k] {
		p[i] = 'a'
	}
	e.n -= k
	return int(k), nil
}

// A line without end is an error at MaxRecordBytes, not unbounded memory:
// a few KB of zstd expand to it.
func TestRecordSizeLimit(t *testing.T) {
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write([]byte(`{"a":1}` + "\n"))
	io.Copy(zw, &endless{MaxRecordBytes + 1<<20})
	zw.Close()
	if z.Len() > 1<<20 {
		t.Fatalf("the compressed input is %d bytes", z.Len())
	}
	r, err := NewReader(bytes.NewReader(z.Bytes()), "big.jsonl.zst")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if err == nil || !strings.Contains(err.Error(), "longer than 256 MiB") || !strings.Contains(err.Error(), "big.jsonl.zst:2") {
		t.Fatalf("got %v", err)
	}
	// A JSON array whose element has no end.
	r, err = NewReader(io.MultiReader(strings.NewReader(`[{"a":"`), &endless{MaxRecordBytes + 1<<20}), "arr.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "longer than 256 MiB") {
		t.Fatalf("array: %v", err)
	}
}

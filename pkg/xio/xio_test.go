package xio

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestOpenDetectsZstd(t *testing.T) {
	dir := t.TempDir()
	payload := bytes.Repeat([]byte("hello zstd\n"), 1000)
	var zbuf bytes.Buffer
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write(payload)
	zw.Close()
	for name, data := range map[string][]byte{"plain.txt": payload, "packed.bin": zbuf.Bytes(), "empty": nil, "abc": []byte("abc")} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		in, err := Open(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(in)
		in.Close()
		want := data
		if name == "packed.bin" {
			want = payload
		}
		if err != nil || !bytes.Equal(got, want) || in.Zstd != (name == "packed.bin") {
			t.Fatalf("%s: got %d bytes (zstd=%v), err %v", name, len(got), in.Zstd, err)
		}
	}
}

func TestCreateAtomicAndZstdByName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.txt.zst")
	o, err := Create(p, false)
	if err != nil {
		t.Fatal(err)
	}
	o.WriteString("data\n")
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("file visible before Commit")
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if !bytes.HasPrefix(raw, ZstdMagic) {
		t.Fatal(".zst name did not compress")
	}
	in, _ := Open(p)
	got, _ := io.ReadAll(in)
	if string(got) != "data\n" {
		t.Fatalf("got %q", got)
	}
	// CreateRaw never compresses; Abort leaves nothing
	o2, _ := CreateRaw(filepath.Join(dir, "raw.zst"))
	o2.WriteString("x")
	o2.Commit()
	if raw, _ := os.ReadFile(filepath.Join(dir, "raw.zst")); string(raw) != "x" {
		t.Fatalf("CreateRaw wrote %q", raw)
	}
	o3, _ := Create(filepath.Join(dir, "gone.txt"), true)
	o3.WriteString("x")
	o3.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("dir has %d entries", len(ents))
	}
}

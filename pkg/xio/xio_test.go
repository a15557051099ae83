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

func TestCreateDirReplacesAtomically(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "model")
	for i, content := range []string{"first", "second"} {
		d, err := CreateDir(final)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d.Path, "f"), []byte(content), 0o644)
		if i == 1 {
			// until Commit, the old directory is still what readers see
			if b, _ := os.ReadFile(filepath.Join(final, "f")); string(b) != "first" {
				t.Fatalf("before commit: %q", b)
			}
		}
		if err := d.Commit(); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(final, "f")); string(b) != content {
			t.Fatalf("after commit %d: %q", i, b)
		}
	}
	st, _ := os.Stat(final)
	if want := os.FileMode(0o777) &^ umask(); st.Mode().Perm() != want {
		t.Fatalf("dir mode %v, want %v", st.Mode().Perm(), want)
	}
	d, _ := CreateDir(final)
	d.Abort()
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "model" {
		t.Fatalf("left behind: %v", ents)
	}
	// files from Create get the usual mode too, not CreateTemp's 0600
	o, _ := Create(filepath.Join(parent, "x.txt"), false)
	o.WriteString("x")
	o.Commit()
	fst, _ := os.Stat(filepath.Join(parent, "x.txt"))
	if want := os.FileMode(0o666) &^ umask(); fst.Mode().Perm() != want {
		t.Fatalf("file mode %v, want %v", fst.Mode().Perm(), want)
	}
}

package xio

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeOut(t *testing.T, path, text string) {
	t.Helper()
	o, err := CreateRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
}

func onlyNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

// -o naming a symlink replaces the link's target (atomically, in the
// target's directory) and leaves the link a link.
func TestCreateFollowsSymlink(t *testing.T) {
	d := t.TempDir()
	os.Mkdir(filepath.Join(d, "real"), 0o755)
	target := filepath.Join(d, "real", "data.jsonl")
	os.WriteFile(target, []byte("old\n"), 0o644)
	link := filepath.Join(d, "link.jsonl")
	if err := os.Symlink(filepath.Join("real", "data.jsonl"), link); err != nil {
		t.Fatal(err)
	}
	// A chain of two links.
	link2 := filepath.Join(d, "link2.jsonl")
	os.Symlink("link.jsonl", link2)
	writeOut(t, link2, "new\n")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link.jsonl is no longer a symlink: %v %v", fi, err)
	}
	if fi, err := os.Lstat(link2); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link2.jsonl is no longer a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "new\n" {
		t.Fatalf("target holds %q", b)
	}
	if n := onlyNames(t, filepath.Join(d, "real")); len(n) != 1 {
		t.Fatalf("real/ holds %v", n)
	}
	// A dangling link creates its target.
	dangling := filepath.Join(d, "dangling")
	os.Symlink(filepath.Join(d, "real", "made.txt"), dangling)
	writeOut(t, dangling, "x")
	if b, _ := os.ReadFile(filepath.Join(d, "real", "made.txt")); string(b) != "x" {
		t.Fatalf("dangling link target holds %q", b)
	}
	// A loop is an error, not a hang.
	os.Symlink("loop2", filepath.Join(d, "loop1"))
	os.Symlink("loop1", filepath.Join(d, "loop2"))
	if _, err := CreateRaw(filepath.Join(d, "loop1")); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Fatalf("loop: %v", err)
	}
}

// -o naming a FIFO writes into it (a reader gets the data) and leaves the
// FIFO in place; nothing is renamed over it.
func TestCreateWritesThroughFIFO(t *testing.T) {
	d := t.TempDir()
	fifo := filepath.Join(d, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- "open: " + err.Error()
			return
		}
		b, _ := io.ReadAll(f)
		f.Close()
		got <- string(b)
	}()
	o, err := Create(fifo, false)
	if err != nil {
		t.Fatal(err)
	}
	o.WriteString("through the pipe\n")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "through the pipe\n" {
			t.Fatalf("reader got %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reader got nothing")
	}
	fi, err := os.Lstat(fifo)
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi, err)
	}
	if n := onlyNames(t, d); len(n) != 1 {
		t.Fatalf("dir holds %v", n)
	}
}

// /dev/null (a device) is written through, and stays a device; a symlink to
// it too.
func TestCreateDeviceAndLinkToDevice(t *testing.T) {
	fi0, err := os.Stat(os.DevNull)
	if err != nil || fi0.Mode()&os.ModeDevice == 0 {
		t.Skip("no /dev/null device")
	}
	d := t.TempDir()
	link := filepath.Join(d, "null")
	os.Symlink(os.DevNull, link)
	for _, p := range []string{os.DevNull, link} {
		o, err := Create(p, true) // zstd too: the compressor's frame goes through
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		o.WriteString(strings.Repeat("x", 1<<16))
		if err := o.Commit(); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	fi, err := os.Lstat(os.DevNull)
	if err != nil || fi.Mode()&os.ModeDevice == 0 || !os.SameFile(fi, fi0) {
		t.Fatalf("/dev/null is no longer the device: %v", fi.Mode())
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link to /dev/null was replaced")
	}
	if n := onlyNames(t, d); len(n) != 1 {
		t.Fatalf("dir holds %v", n)
	}
	// Abort on a device removes nothing.
	o, err := Create(link, false)
	if err != nil {
		t.Fatal(err)
	}
	o.Abort()
	if _, err := os.Stat(os.DevNull); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRefusesDirectory(t *testing.T) {
	d := t.TempDir()
	if _, err := Create(d, false); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("got %v", err)
	}
}

// Temporary names left by killed runs are removed by the next writer of
// the same name; a live writer's (locked) temporary name is not.
func TestCleanStale(t *testing.T) {
	d := t.TempDir()
	final := filepath.Join(d, "out.jsonl")
	old := time.Now().Add(-time.Hour)
	deadFile := filepath.Join(d, ".out.jsonl.tmp-111")
	deadDir := filepath.Join(d, ".out.jsonl.tmp-222")
	os.WriteFile(deadFile, []byte("torn"), 0o644)
	os.MkdirAll(filepath.Join(deadDir, "sub"), 0o755)
	os.WriteFile(filepath.Join(deadDir, "sub", "f"), []byte("x"), 0o644)
	other := filepath.Join(d, ".other.tmp-333") // another output's: not ours to clean
	os.WriteFile(other, nil, 0o644)
	fresh := filepath.Join(d, ".out.jsonl.tmp-444") // just created: maybe not locked yet
	os.WriteFile(fresh, nil, 0o644)
	for _, p := range []string{deadFile, deadDir, other} {
		os.Chtimes(p, old, old)
	}
	// A live writer: its temporary file is locked.
	live, err := CreateRaw(final)
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(live.tmp, old, old)
	writeOut(t, final, "ok\n")
	for _, p := range []string{deadFile, deadDir} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was not cleaned", filepath.Base(p))
		}
	}
	for _, p := range []string{other, fresh, live.tmp} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed", filepath.Base(p))
		}
	}
	live.WriteString("live\n")
	if err := live.Commit(); err != nil {
		t.Fatalf("the live writer failed: %v", err)
	}
	// CleanStaleDir takes every name.
	CleanStaleDir(d)
	if _, err := os.Lstat(other); err == nil {
		t.Errorf("CleanStaleDir left %s", filepath.Base(other))
	}
	if _, err := os.Lstat(final); err != nil {
		t.Errorf("CleanStaleDir removed the output")
	}
	// Dirs: a killed CreateDir's leftovers go at the next CreateDir.
	ck := filepath.Join(d, "checkpoint-5")
	deadCk := filepath.Join(d, ".checkpoint-5.tmp-9")
	os.Mkdir(deadCk, 0o755)
	os.Chtimes(deadCk, old, old)
	dd, err := CreateDir(ck)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(deadCk); err == nil {
		t.Errorf("CreateDir left %s", filepath.Base(deadCk))
	}
	os.Chtimes(dd.Path, old, old)
	CleanStaleDir(d) // the live one is locked
	if _, err := os.Lstat(dd.Path); err != nil {
		t.Fatalf("the live directory was removed")
	}
	if err := dd.Commit(); err != nil {
		t.Fatal(err)
	}
}

// An output directory named through a symlink replaces the directory the
// link points to; the link stays.
func TestCreateDirFollowsSymlink(t *testing.T) {
	d := t.TempDir()
	real := filepath.Join(d, "models", "v1")
	os.MkdirAll(real, 0o755)
	os.WriteFile(filepath.Join(real, "old"), nil, 0o644)
	link := filepath.Join(d, "current")
	os.Symlink(filepath.Join("models", "v1"), link)
	o, err := CreateDir(link)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(o.Path, "new"), []byte("x"), 0o644)
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link was replaced")
	}
	if _, err := os.Stat(filepath.Join(real, "new")); err != nil {
		t.Fatal("the target was not replaced")
	}
	if _, err := os.Stat(filepath.Join(real, "old")); err == nil {
		t.Fatal("the old content is still there")
	}
	if n := onlyNames(t, filepath.Join(d, "models")); len(n) != 1 {
		t.Fatalf("models/ holds %v", n)
	}
}

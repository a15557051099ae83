// Package xio opens inputs and creates outputs the way every binary of the
// project does: "-" or "" means stdin/stdout, zstd is read transparently
// (detected by its magic bytes) and written on request or for a ".zst" name,
// and files are written under a temporary name and renamed on Commit, so a
// crash never leaves half a file behind.
package xio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/klauspost/compress/zstd"
)

// ZstdMagic is the frame magic of a zstd stream.
var ZstdMagic = []byte{0x28, 0xB5, 0x2F, 0xFD}

// IsStdio reports whether path names stdin/stdout.
func IsStdio(path string) bool { return path == "" || path == "-" }

// DisplayName is the name used in error messages for path.
func DisplayName(path string, out bool) string {
	if IsStdio(path) {
		if out {
			return "<stdout>"
		}
		return "<stdin>"
	}
	return path
}

// Input is an opened input stream, decompressed when it was zstd.
type Input struct {
	Name string // for messages: the path or "<stdin>"
	*bufio.Reader
	closers []func() error
	Zstd    bool
}

// Close releases the input.
func (in *Input) Close() error {
	var first error
	for i := len(in.closers) - 1; i >= 0; i-- {
		if err := in.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	in.closers = nil
	return first
}

// Open opens path ("" or "-" for stdin), transparently decompressing zstd.
func Open(path string) (*Input, error) {
	if IsStdio(path) {
		return NewInput(os.Stdin, "<stdin>", nil)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return NewInput(f, path, f.Close)
}

// NewInput wraps r; closeFn (may be nil) is called by Close.
func NewInput(r io.Reader, name string, closeFn func() error) (*Input, error) {
	in := &Input{Name: name}
	if closeFn != nil {
		in.closers = append(in.closers, closeFn)
	}
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		in.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if bytes.Equal(head, ZstdMagic) {
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<31))
		if err != nil {
			in.Close()
			return nil, fmt.Errorf("%s: zstd: %w", name, err)
		}
		in.closers = append(in.closers, func() error { dec.Close(); return nil })
		in.Zstd = true
		br = bufio.NewReaderSize(dec, 1<<20)
	}
	in.Reader = br
	return in, nil
}

// Output is a buffered output stream. For a file it writes to a temporary
// name in the same directory; Commit flushes and renames it into place,
// Abort removes it.
type Output struct {
	Name string
	*bufio.Writer
	zw   *zstd.Encoder
	f    *os.File
	tmp  string
	path string
	done bool
}

// WantsZstd reports whether an output to path should be compressed.
func WantsZstd(path string, flag bool) bool {
	return flag || strings.HasSuffix(path, ".zst")
}

// Create opens path for writing ("" or "-" for stdout), compressed with zstd
// when zstdOut is set or the name ends in ".zst".
func Create(path string, zstdOut bool) (*Output, error) {
	return create(path, WantsZstd(path, zstdOut), os.Stdout)
}

// CreateTo is Create with stdout replaced by w (for commands whose Main
// takes its stdout as an io.Writer, e.g. to run them in-process in tests).
func CreateTo(path string, zstdOut bool, stdout io.Writer) (*Output, error) {
	return create(path, WantsZstd(path, zstdOut), stdout)
}

// CreateRaw is Create without any compression, whatever the name.
func CreateRaw(path string) (*Output, error) { return create(path, false, os.Stdout) }

func create(path string, compress bool, stdout io.Writer) (*Output, error) {
	out := &Output{Name: DisplayName(path, true), path: path}
	var w io.Writer
	if IsStdio(path) {
		w = stdout
	} else {
		dir, base := filepath.Split(path)
		if dir == "" {
			dir = "."
		}
		f, err := os.CreateTemp(dir, "."+base+".tmp-*")
		if err != nil {
			return nil, err
		}
		// CreateTemp makes the file 0600; give it the usual 0666 &^ umask.
		if err := f.Chmod(0o666 &^ umask()); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		out.f, out.tmp = f, f.Name()
		w = f
	}
	if compress {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			out.Abort()
			return nil, err
		}
		out.zw = zw
		w = zw
	}
	out.Writer = bufio.NewWriterSize(w, 1<<20)
	return out, nil
}

// Flush pushes buffered data through the compressor to the file or pipe.
func (o *Output) Flush() error {
	if err := o.Writer.Flush(); err != nil {
		return err
	}
	if o.zw != nil {
		return o.zw.Flush()
	}
	return nil
}

// Commit flushes everything and, for a file, renames it into place.
func (o *Output) Commit() error {
	if o.done {
		return nil
	}
	o.done = true
	err := o.Writer.Flush()
	if o.zw != nil {
		if cerr := o.zw.Close(); err == nil {
			err = cerr
		}
	}
	if o.f != nil {
		if err == nil {
			err = o.f.Sync()
		}
		if cerr := o.f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(o.tmp, o.path)
		}
		if err != nil {
			os.Remove(o.tmp)
		}
	}
	return err
}

// Abort discards a file output (no-op for stdout beyond a flush attempt).
func (o *Output) Abort() {
	if o.done {
		return
	}
	o.done = true
	if o.f != nil {
		o.f.Close()
		os.Remove(o.tmp)
		return
	}
	if o.Writer != nil {
		o.Writer.Flush()
	}
	if o.zw != nil {
		o.zw.Close()
	}
}

var umaskOnce = sync.OnceValue(func() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
})

func umask() os.FileMode { return umaskOnce() }

// IsBrokenPipe reports whether err comes from writing to a closed pipe.
func IsBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE)
}

// AtomicWriteFile writes data to path through a temporary file and rename.
func AtomicWriteFile(path string, data []byte) error {
	o, err := CreateRaw(path)
	if err != nil {
		return err
	}
	if _, err := o.Write(data); err != nil {
		o.Abort()
		return err
	}
	return o.Commit()
}

// Dir is an output directory written under a hidden temporary name beside
// its final name, so that a reader never sees it half-written: Commit
// renames it into place (an existing directory there is moved aside first
// and removed afterwards), Abort removes it.
type Dir struct {
	Final string // where it will be
	Path  string // where it is being written
}

// CreateDir starts the directory final (its parents are created).
func CreateDir(final string) (*Dir, error) {
	final = filepath.Clean(final)
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(final)+".tmp-")
	if err != nil {
		return nil, err
	}
	// MkdirTemp makes the directory 0700; give it the usual 0777 &^ umask.
	if err := os.Chmod(tmp, 0o777&^umask()); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Dir{Final: final, Path: tmp}, nil
}

// Commit puts the directory in place, replacing what was at Final.
func (d *Dir) Commit() error {
	var old string
	if _, err := os.Lstat(d.Final); err == nil {
		old = d.Path + ".old"
		if err := os.Rename(d.Final, old); err != nil {
			return err
		}
	}
	if err := os.Rename(d.Path, d.Final); err != nil {
		if old != "" {
			os.Rename(old, d.Final)
		}
		return err
	}
	if old != "" {
		os.RemoveAll(old) // best effort: the new directory is in place
	}
	return nil
}

// Abort removes the temporary directory.
func (d *Dir) Abort() { os.RemoveAll(d.Path) }

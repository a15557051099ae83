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
	"time"

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
	path string // where the file goes (a symlink's target)
	done bool
	// direct: the output is not a regular file (a device, FIFO or
	// socket) and is written in place, with no temporary name.
	direct bool
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
		target, direct, err := ResolveOutput(path)
		if err != nil {
			return nil, err
		}
		if direct {
			// A device, FIFO or socket: write through to it; renaming a
			// file over it would replace the node itself.
			f, err := os.OpenFile(target, os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			out.f, out.direct = f, true
			w = f
		} else {
			dir, base := filepath.Split(target)
			if dir == "" {
				dir = "."
			}
			f, err := os.CreateTemp(dir, "."+base+TempInfix+"*")
			if err != nil {
				return nil, err
			}
			// CreateTemp makes the file 0600; give it the usual 0666 &^ umask.
			if err := f.Chmod(0o666 &^ umask()); err != nil {
				f.Close()
				os.Remove(f.Name())
				return nil, err
			}
			// Held until the process ends: CleanStale leaves a locked
			// temporary file alone (its writer is alive).
			lock(f)
			CleanStale(target)
			out.f, out.tmp, out.path = f, f.Name(), target
			w = f
		}
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

// TempInfix is what the temporary names of outputs being written carry:
// ".NAME.tmp-RANDOM" beside NAME (see CleanStale).
const TempInfix = ".tmp-"

// maxLinks bounds the symlinks followed for one output name (as the
// kernel's ELOOP limit).
const maxLinks = 40

// ResolveOutput says where an output named path goes. A symlink is
// followed (to its final target, which may not exist yet: a dangling link
// creates its target) so that the target is replaced, not the link, as
// sed -i --follow-symlinks and most editors do. direct is true when the
// target exists and is not a regular file (a device such as /dev/null, a
// FIFO, a socket): such a node is written in place, never renamed over. A
// directory is an error.
func ResolveOutput(path string) (target string, direct bool, err error) {
	target, fi, err := resolveLinks(path)
	switch {
	case err != nil:
		return "", false, err
	case fi == nil || fi.Mode().IsRegular():
		return target, false, nil
	case fi.IsDir():
		return "", false, fmt.Errorf("%s: is a directory", path)
	default:
		return target, true, nil
	}
}

// resolveLinks follows path's symlinks to the final name, which may not
// exist (fi nil then).
func resolveLinks(path string) (string, os.FileInfo, error) {
	target := path
	for i := 0; ; i++ {
		fi, err := os.Lstat(target)
		if errors.Is(err, os.ErrNotExist) {
			return target, nil, nil
		}
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return target, fi, nil
		}
		if i >= maxLinks {
			return "", nil, fmt.Errorf("%s: too many levels of symbolic links", path)
		}
		link, err := os.Readlink(target)
		if err != nil {
			return "", nil, err
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(target), link)
		}
		target = link
	}
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
	if o.f != nil && o.direct {
		if cerr := o.f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if o.f != nil {
		if err == nil {
			err = o.f.Sync()
		}
		// Renamed while still open (and locked), so that CleanStale never
		// sees it unlocked under its temporary name.
		if err == nil {
			err = os.Rename(o.tmp, o.path)
			if err != nil {
				os.Remove(o.tmp)
			}
		} else {
			os.Remove(o.tmp)
		}
		if cerr := o.f.Close(); err == nil {
			err = cerr
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
		if !o.direct {
			os.Remove(o.tmp)
		}
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
	lockf *os.File
}

// CreateDir starts the directory final (its parents are created).
func CreateDir(final string) (*Dir, error) {
	// A symlink is followed: the directory it points to is replaced, the
	// link stays (as for files).
	final, _, err := resolveLinks(filepath.Clean(final))
	if err != nil {
		return nil, err
	}
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
	d := &Dir{Final: final, Path: tmp}
	if f, err := os.Open(tmp); err == nil {
		lock(f)
		d.lockf = f
	}
	CleanStale(final)
	return d, nil
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
	d.unlock()
	return nil
}

// Abort removes the temporary directory.
func (d *Dir) Abort() {
	os.RemoveAll(d.Path)
	d.unlock()
}

func (d *Dir) unlock() {
	if d.lockf != nil {
		d.lockf.Close()
		d.lockf = nil
	}
}

// lock takes an exclusive flock on f, held while f is open (the kernel
// drops it when the process dies, however it dies).
func lock(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// staleAge is how old an unlocked temporary name must be before CleanStale
// removes it: a writer locks its file right after creating it, and this
// margin covers that instant.
const staleAge = 10 * time.Second

// CleanStale removes what killed runs left beside final: unlocked
// ".BASE.tmp-*" files and directories (the temporary names of Create and
// CreateDir, and the ".old" names of Dir.Commit) older than a few seconds.
// A live writer holds a lock on its temporary name, so it is never touched.
// Errors are ignored: cleaning is best effort.
func CleanStale(final string) {
	dir, base := filepath.Split(filepath.Clean(final))
	cleanStale(dir, "."+base+TempInfix)
}

// CleanStaleDir is CleanStale for every name in dir: it removes all the
// unlocked ".*.tmp-*" entries there (for a directory one program owns, such
// as the trainer's output directory).
func CleanStaleDir(dir string) { cleanStale(dir, "") }

func cleanStale(dir, prefix string) {
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if prefix != "" && !strings.HasPrefix(name, prefix) {
			continue
		}
		if !strings.HasPrefix(name, ".") || !strings.Contains(name, TempInfix) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 || !(fi.Mode().IsRegular() || fi.IsDir()) {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // a live writer holds it
			continue
		}
		os.RemoveAll(p)
		f.Close()
	}
}

// OpenRegular opens path for reading and refuses anything that is not a
// regular file: a FIFO named where a model file is expected would block
// the open or the read forever, a device would be read without end. The
// open itself does not block (O_NONBLOCK, cleared on a regular file).
func OpenRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadRegular reads a whole regular file (see OpenRegular) of at most
// limit bytes.
func ReadRegular(path string, limit int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	return b, nil
}

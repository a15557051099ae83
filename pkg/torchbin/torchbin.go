// Package torchbin reads PyTorch checkpoints written by torch.save (the zip
// format of torch >= 1.6: <name>/data.pkl plus one file per storage under
// <name>/data/, and the older non-zip format), such as Hugging Face
// pytorch_model.bin files, without
// Python and without executing anything: the pickle is read by a restricted
// machine (see Unpickle) that only knows the globals of a plain state dict
// and refuses every other global by name.
//
// The file is memory-mapped; storages stored uncompressed (as torch.save
// writes them) are used in place, so a tensor that is a contiguous view is
// returned without a copy. Strided views (several tensors sharing a storage
// with offsets and strides) are materialised into a new contiguous buffer.
package torchbin

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// File is an open checkpoint.
type File struct {
	Path     string
	mapping  []byte
	tensors  map[string]*TensorRef
	names    []string // pickle order
	storages map[string][]byte
}

// legacyMagic starts the pre-1.6 torch.save format: a pickled big integer.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// Open memory-maps a torch.save zip checkpoint and reads its pickle.
func Open(path string) (*File, error) {
	fh, err := xio.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < 4 {
		return nil, fmt.Errorf("%s: not a PyTorch checkpoint (only %d bytes)", path, st.Size())
	}
	mapping, err := syscall.Mmap(int(fh.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	f, err := parse(path, mapping)
	if err != nil {
		syscall.Munmap(mapping)
		return nil, err
	}
	f.mapping = mapping
	return f, nil
}

// Parse reads a checkpoint held in memory.
func Parse(name string, b []byte) (*File, error) { return parse(name, b) }

func parse(path string, b []byte) (*File, error) {
	if bytes.HasPrefix(b, legacyMagic) {
		return parseLegacy(path, b)
	}
	if !bytes.HasPrefix(b, []byte("PK\x03\x04")) {
		return nil, fmt.Errorf("%s: not a PyTorch zip checkpoint (no zip signature)", path)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: bad or truncated zip archive: %v", path, err)
	}
	var pkl *zip.File
	prefix := ""
	entries := map[string]*zip.File{}
	for _, zf := range zr.File {
		entries[zf.Name] = zf
		dir, base := pathSplit(zf.Name)
		if base == "data.pkl" && !strings.Contains(dir, "/") && dir != "" {
			if pkl != nil {
				return nil, fmt.Errorf("%s: two data.pkl records (%s, %s)", path, pkl.Name, zf.Name)
			}
			pkl, prefix = zf, dir
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("%s: zip archive without <name>/data.pkl: not a torch.save checkpoint", path)
	}
	if bo, ok := entries[prefix+"/byteorder"]; ok {
		v, err := entryBytes(b, bo, 16)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, bo.Name, err)
		}
		if strings.TrimSpace(string(v)) != "little" {
			return nil, fmt.Errorf("%s: byte order %q is not supported (only little-endian)", path, v)
		}
	}
	pb, err := entryBytes(b, pkl, 1<<30)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %v", path, pkl.Name, err)
	}
	obj, err := Unpickle(pb)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, pkl.Name, err)
	}
	return buildFile(path, obj, func(name string, st *StorageRef) ([]byte, error) {
		zf := entries[prefix+"/data/"+st.Key]
		if zf == nil {
			return nil, fmt.Errorf("storage %s is missing from the archive (truncated file?)", st.Key)
		}
		es := int64(safetensors.DType(st.DType).Size())
		if st.NumElems > (1<<56)/es {
			return nil, fmt.Errorf("storage %s is implausibly large", st.Key)
		}
		data, err := entryBytes(b, zf, st.NumElems*es)
		if err != nil {
			return nil, fmt.Errorf("storage %s: %v", st.Key, err)
		}
		return data, nil
	})
}

// buildFile turns an unpickled state dict into a File; storage returns the
// bytes of a storage the first time it is referenced.
func buildFile(path string, obj any, storage func(tensor string, st *StorageRef) ([]byte, error)) (*File, error) {
	d, ok := obj.(*Dict)
	if !ok {
		return nil, fmt.Errorf("%s: the checkpoint holds a %s, not a state dict", path, typeName(obj))
	}
	f := &File{Path: path, tensors: map[string]*TensorRef{}, storages: map[string][]byte{}}
	for i, k := range d.Keys {
		name, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("%s: state dict key %v is not a string", path, k)
		}
		t, ok := d.Values[i].(*TensorRef)
		if !ok {
			return nil, fmt.Errorf("%s: state dict entry %q is a %s, not a tensor", path, name, typeName(d.Values[i]))
		}
		st := t.Storage
		data, ok := f.storages[st.Key]
		if !ok {
			var err error
			data, err = storage(name, st)
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %q: %v", path, name, err)
			}
			es := int64(safetensors.DType(st.DType).Size())
			if int64(len(data)) < st.NumElems*es {
				return nil, fmt.Errorf("%s: tensor %q: storage %s has %d bytes, want %d (%d %s elements)", path, name, st.Key, len(data), st.NumElems*es, st.NumElems, st.DType)
			}
			f.storages[st.Key] = data
		}
		if err := checkView(t); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %v", path, name, err)
		}
		f.tensors[name] = t
		f.names = append(f.names, name)
	}
	return f, nil
}

// parseLegacy reads the pre-1.6 format: pickles of the magic number, the
// protocol version (1001), sys_info and the state dict, a pickled list of
// storage keys, then each storage in that order as an int64 element count
// followed by its bytes.
func parseLegacy(path string, b []byte) (*File, error) {
	_, pos, err := unpickleAt(b, 0) // the magic number (checked by the caller)
	if err != nil {
		return nil, fmt.Errorf("%s: legacy torch format: %w", path, err)
	}
	ver, pos, err := unpickleAt(b, pos)
	if err != nil {
		return nil, fmt.Errorf("%s: legacy torch format: %w", path, err)
	}
	if v, _ := ver.(int64); v != 1001 {
		return nil, fmt.Errorf("%s: legacy torch format: protocol version %v is not supported", path, ver)
	}
	info, pos, err := unpickleAt(b, pos)
	if err != nil {
		return nil, fmt.Errorf("%s: legacy torch format: %w", path, err)
	}
	if d, ok := info.(*Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, fmt.Errorf("%s: a big-endian legacy checkpoint is not supported", path)
		}
	}
	obj, pos, err := unpickleAt(b, pos)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	keysObj, pos, err := unpickleAt(b, pos)
	if err != nil {
		return nil, fmt.Errorf("%s: legacy torch format: storage keys: %w", path, err)
	}
	keys, ok := keysObj.(*List)
	if !ok {
		return nil, fmt.Errorf("%s: legacy torch format: storage keys are a %s", path, typeName(keysObj))
	}
	// element sizes come from the tensors' storage types
	sizes := map[string]int64{}
	if d, ok := obj.(*Dict); ok {
		for _, v := range d.Values {
			if t, ok := v.(*TensorRef); ok {
				sizes[t.Storage.Key] = int64(safetensors.DType(t.Storage.DType).Size())
			}
		}
	}
	blobs := map[string][]byte{}
	for _, k := range keys.Items {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("%s: legacy torch format: storage key %v is not a string", path, k)
		}
		if pos+8 > len(b) {
			return nil, fmt.Errorf("%s: storage %s: truncated file", path, key)
		}
		n := int64(binary.LittleEndian.Uint64(b[pos:]))
		pos += 8
		es, ok := sizes[key]
		if !ok {
			return nil, fmt.Errorf("%s: storage %s is not used by any tensor", path, key)
		}
		if n < 0 || n > (1<<56)/es || int64(pos)+n*es > int64(len(b)) {
			return nil, fmt.Errorf("%s: storage %s: %d elements run past the end of the file (truncated file?)", path, key, n)
		}
		blobs[key] = b[pos : pos+int(n*es) : pos+int(n*es)]
		pos += int(n * es)
	}
	return buildFile(path, obj, func(name string, st *StorageRef) ([]byte, error) {
		data, ok := blobs[st.Key]
		if !ok {
			return nil, fmt.Errorf("storage %s is not in the file", st.Key)
		}
		return data, nil
	})
}

func pathSplit(name string) (string, string) {
	i := strings.LastIndex(name, "/")
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// entryBytes returns the data of a zip entry: a slice of b when stored
// uncompressed (torch.save's way), else a decompressed copy of at most max
// bytes.
func entryBytes(b []byte, zf *zip.File, max int64) ([]byte, error) {
	if zf.Method == zip.Store {
		off, err := zf.DataOffset()
		if err != nil {
			return nil, err
		}
		n := int64(zf.UncompressedSize64)
		if zf.CompressedSize64 != zf.UncompressedSize64 || off < 0 || n < 0 || off+n > int64(len(b)) || off+n < off {
			return nil, fmt.Errorf("entry ends beyond the file (truncated file?)")
		}
		return b[off : off+n : off+n], nil
	}
	// A compressed entry (torch.save never compresses; a re-zipped file
	// may) is decompressed into memory: its size is checked before
	// anything is allocated. Weights barely compress, so an entry that
	// claims to expand much more than MaxExpansion times is a zip bomb
	// (a few MB of deflated zeros declaring gigabytes), not a model.
	n := int64(zf.UncompressedSize64)
	if n < 0 || n > max {
		return nil, fmt.Errorf("entry declares %d bytes uncompressed, more than the %d expected", zf.UncompressedSize64, max)
	}
	if c := int64(zf.CompressedSize64); n > 1<<20 && (c <= 0 || n/c > MaxExpansion) {
		return nil, fmt.Errorf("compressed entry would expand %d bytes to %d (more than %dx): refused", zf.CompressedSize64, n, MaxExpansion)
	}
	return readEntry(zf, n)
}

// MaxExpansion bounds the ratio of uncompressed to compressed size of a
// compressed zip entry of more than 1 MiB.
const MaxExpansion = 16

// readEntry decompresses an entry of exactly n bytes (its header's size)
// into one allocation of n bytes.
func readEntry(zf *zip.File, n int64) ([]byte, error) {
	if n < 0 || n != int64(zf.UncompressedSize64) {
		return nil, fmt.Errorf("entry declares %d bytes uncompressed, want %d", zf.UncompressedSize64, n)
	}
	r, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("decompressing: %v", err)
	}
	// Nothing may follow (archive/zip checks the size and CRC at EOF).
	if k, err := r.Read(make([]byte, 1)); k != 0 || (err != nil && err != io.EOF) {
		return nil, fmt.Errorf("entry is larger than its header says, or corrupt: %v", err)
	}
	return data, nil
}

// checkView validates that every element of a strided view lies inside its
// storage.
func checkView(t *TensorRef) error {
	n := int64(1)
	last := t.Offset
	for i, d := range t.Shape {
		if d > 0 && n > (1<<56)/d {
			return fmt.Errorf("shape %v is implausibly large", t.Shape)
		}
		n *= d
		if d > 0 {
			if t.Stride[i] > (1<<56)/d {
				return fmt.Errorf("stride %v is implausibly large", t.Stride)
			}
			last += (d - 1) * t.Stride[i]
		}
	}
	if n == 0 {
		return nil
	}
	// Bytes materializes the view: a broadcast view (stride 0) of a small
	// storage must not size a huge allocation. A state dict holds real
	// tensors, never more elements than their storage.
	if n > t.Storage.NumElems {
		return fmt.Errorf("view of shape %v (%d elements) is larger than its %d-element storage (a broadcast view is not supported)", t.Shape, n, t.Storage.NumElems)
	}
	if last >= t.Storage.NumElems {
		return fmt.Errorf("view (offset %d, shape %v, stride %v) reaches element %d of a %d-element storage", t.Offset, t.Shape, t.Stride, last, t.Storage.NumElems)
	}
	return nil
}

// Close unmaps the file.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := syscall.Munmap(f.mapping)
	f.mapping = nil
	f.storages = nil
	return err
}

// Names lists the tensors in the checkpoint's order.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Tensor returns the view behind a tensor.
func (f *File) Tensor(name string) (*TensorRef, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Info describes a tensor in safetensors terms (offsets unset).
func (f *File) Info(name string) (safetensors.TensorInfo, bool) {
	t, ok := f.tensors[name]
	if !ok {
		return safetensors.TensorInfo{}, false
	}
	return safetensors.TensorInfo{Name: name, DType: safetensors.DType(t.Storage.DType), Shape: append([]int64(nil), t.Shape...)}, true
}

// Contiguous reports whether the view is a plain row-major slice of its
// storage.
func (t *TensorRef) Contiguous() bool {
	want := int64(1)
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] == 0 {
			return true
		}
		if t.Shape[i] != 1 && t.Stride[i] != want {
			return false
		}
		want *= t.Shape[i]
	}
	return true
}

// NumElements is the product of the shape.
func (t *TensorRef) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes returns the tensor's little-endian data in row-major order: a
// read-only slice of the mapping for a contiguous view, else a new buffer.
func (f *File) Bytes(name string) ([]byte, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	data := f.storages[t.Storage.Key]
	es := int64(safetensors.DType(t.Storage.DType).Size())
	n := t.NumElements()
	if n == 0 {
		return []byte{}, nil
	}
	if t.Contiguous() {
		lo, hi := t.Offset*es, (t.Offset+n)*es
		return data[lo:hi:hi], nil
	}
	out := make([]byte, n*es)
	gather(out, data, t, es)
	return out, nil
}

// gather copies a strided view into out in row-major order; runs along a
// unit-stride last dimension are copied in one piece.
func gather(out, data []byte, t *TensorRef, es int64) {
	rank := len(t.Shape)
	idx := make([]int64, rank)
	inner := int64(1)
	innerContig := rank > 0 && t.Stride[rank-1] == 1
	if innerContig {
		inner = t.Shape[rank-1]
	}
	var pos int64
	for {
		src := t.Offset
		for i := 0; i < rank; i++ {
			src += idx[i] * t.Stride[i]
		}
		copy(out[pos:pos+inner*es], data[src*es:(src+inner)*es])
		pos += inner * es
		// advance the index (skipping the inner run)
		d := rank - 1
		if innerContig {
			d = rank - 2
		}
		for ; d >= 0; d-- {
			idx[d]++
			if idx[d] < t.Shape[d] {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

// Release drops the pages under b (a slice returned by Bytes) from the
// resident set; see safetensors.File.Release.
func (f *File) Release(b []byte) {
	if off, ok := f.offsetOf(b); ok {
		safetensors.ReleaseMapped(f.mapping, off, len(b))
	}
}

// Prefetch starts reading the pages under b in the background.
func (f *File) Prefetch(b []byte) {
	if off, ok := f.offsetOf(b); ok {
		safetensors.PrefetchMapped(f.mapping, off, len(b))
	}
}

func (f *File) offsetOf(b []byte) (int, bool) {
	if len(b) == 0 || len(f.mapping) == 0 {
		return 0, false
	}
	base, p := uintptrOf(&f.mapping[0]), uintptrOf(&b[0])
	if p < base || p+uintptr(len(b)) > base+uintptr(len(f.mapping)) {
		return 0, false
	}
	return int(p - base), true
}

// IndexName is the shard index Hugging Face writes for sharded .bin models.
const IndexName = "pytorch_model.bin.index.json"

// ParseIndex reads and validates a pytorch_model.bin.index.json (the same
// layout as the safetensors index).
func ParseIndex(b []byte) (*safetensors.Index, error) { return safetensors.ParseIndex(b) }

// Model is a checkpoint directory: pytorch_model.bin, or shards listed in
// pytorch_model.bin.index.json.
type Model struct {
	*safetensors.Shards[*File]
}

// OpenDir opens a directory holding pytorch_model.bin.index.json or a single
// pytorch_model.bin (or exactly one *.bin), or a path to a .bin file.
func OpenDir(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	single := path
	if st.IsDir() {
		idxPath := filepath.Join(path, IndexName)
		if _, err := os.Stat(idxPath); err == nil {
			set, err := safetensors.OpenIndexed(path, idxPath, Open)
			if err != nil {
				return nil, err
			}
			return &Model{set}, nil
		}
		single = filepath.Join(path, "pytorch_model.bin")
		if _, err := os.Stat(single); err != nil {
			matches, _ := filepath.Glob(filepath.Join(path, "*.bin"))
			if len(matches) != 1 {
				return nil, fmt.Errorf("%s: no pytorch_model.bin, no %s, and %d *.bin files", path, IndexName, len(matches))
			}
			single = matches[0]
		}
	}
	f, err := Open(single)
	if err != nil {
		return nil, err
	}
	set := safetensors.NewShards[*File](path)
	if err := set.Add(f, filepath.Base(single), nil); err != nil {
		f.Close()
		return nil, err
	}
	return &Model{set}, nil
}

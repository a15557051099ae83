package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Tensor is a named tensor with its raw little-endian data.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

// Info describes t (offsets unset).
func (t Tensor) Info() TensorInfo { return TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape} }

// Writer streams a safetensors file: the header is written from the list of
// tensors given up front, then each tensor's data in that order. The file
// appears under its name only on Commit.
type Writer struct {
	out     *xio.Output
	infos   []TensorInfo
	next    int
	path    string
	partial int64 // bytes still owed to the tensor opened by Begin, -1 when none
}

// EncodeHeader builds the header bytes (length prefix included) for infos,
// assigning consecutive offsets in the given order. The JSON is padded with
// spaces to a multiple of 8 bytes so the data section is aligned.
func EncodeHeader(infos []TensorInfo, meta map[string]string) ([]byte, []TensorInfo, error) {
	out := make([]TensorInfo, len(infos))
	seen := map[string]bool{}
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	if len(meta) > 0 {
		mb, err := json.Marshal(meta)
		if err != nil {
			return nil, nil, err
		}
		buf.WriteString(`"__metadata__":`)
		buf.Write(mb)
		first = false
	}
	var off int64
	for i, ti := range infos {
		if ti.DType.Size() == 0 {
			return nil, nil, fmt.Errorf("tensor %q: unsupported dtype %q", ti.Name, ti.DType)
		}
		if seen[ti.Name] || ti.Name == "__metadata__" {
			return nil, nil, fmt.Errorf("tensor %q: duplicate or reserved name", ti.Name)
		}
		seen[ti.Name] = true
		ti.Offsets = [2]int64{off, off + ti.NumBytes()}
		off = ti.Offsets[1]
		out[i] = ti
		if !first {
			buf.WriteByte(',')
		}
		first = false
		nb, _ := json.Marshal(ti.Name)
		buf.Write(nb)
		shape := ti.Shape
		if shape == nil {
			shape = []int64{}
		}
		eb, _ := json.Marshal(headerEntry{DType: ti.DType, Shape: shape, DataOffsets: ti.Offsets[:]})
		buf.WriteByte(':')
		buf.Write(eb)
	}
	buf.WriteByte('}')
	for (8+buf.Len())%8 != 0 {
		buf.WriteByte(' ')
	}
	hdr := make([]byte, 8, 8+buf.Len())
	binary.LittleEndian.PutUint64(hdr, uint64(buf.Len()))
	return append(hdr, buf.Bytes()...), out, nil
}

// NewWriter starts a file at path for the tensors described by infos.
func NewWriter(path string, infos []TensorInfo, meta map[string]string) (*Writer, error) {
	hdr, laid, err := EncodeHeader(infos, meta)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out, err := xio.CreateRaw(path)
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(hdr); err != nil {
		out.Abort()
		return nil, err
	}
	return &Writer{out: out, infos: laid, path: path, partial: -1}, nil
}

// WriteTensor writes the next tensor's data; names must come in the order
// given to NewWriter.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.partial > 0 {
		return fmt.Errorf("%s: tensor %q started while %q is incomplete", w.path, name, w.infos[w.next-1].Name)
	}
	if w.next >= len(w.infos) {
		return fmt.Errorf("%s: tensor %q was not declared", w.path, name)
	}
	ti := w.infos[w.next]
	if ti.Name != name {
		return fmt.Errorf("%s: tensor %q written out of order (expected %q)", w.path, name, ti.Name)
	}
	if int64(len(data)) != ti.NumBytes() {
		return fmt.Errorf("%s: tensor %q: %d bytes, want %d for shape %v %s", w.path, name, len(data), ti.NumBytes(), ti.Shape, ti.DType)
	}
	w.next++
	_, err := w.out.Write(data)
	return err
}

// Begin starts the next tensor, whose data then comes in pieces through
// Write (for tensors too large to hold in memory at once).
func (w *Writer) Begin(name string) error {
	if w.partial > 0 {
		return fmt.Errorf("%s: tensor %q started while %q is incomplete", w.path, name, w.infos[w.next-1].Name)
	}
	if w.next >= len(w.infos) {
		return fmt.Errorf("%s: tensor %q was not declared", w.path, name)
	}
	if ti := w.infos[w.next]; ti.Name != name {
		return fmt.Errorf("%s: tensor %q written out of order (expected %q)", w.path, name, ti.Name)
	}
	w.partial = w.infos[w.next].NumBytes()
	if w.partial == 0 {
		w.partial = -1
	}
	w.next++
	return nil
}

// Write appends a piece of the tensor opened by Begin.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if w.partial < 0 {
		return 0, fmt.Errorf("%s: Write without Begin", w.path)
	}
	if int64(len(p)) > w.partial {
		return 0, fmt.Errorf("%s: tensor %q: %d bytes more than declared", w.path, w.infos[w.next-1].Name, int64(len(p))-w.partial)
	}
	w.partial -= int64(len(p))
	if w.partial == 0 {
		w.partial = -1
	}
	return w.out.Write(p)
}

// Commit checks every tensor was written, then renames the file into place.
func (w *Writer) Commit() error {
	if w.partial > 0 {
		w.out.Abort()
		return fmt.Errorf("%s: tensor %q is missing %d bytes", w.path, w.infos[w.next-1].Name, w.partial)
	}
	if w.next != len(w.infos) {
		w.out.Abort()
		return fmt.Errorf("%s: only %d of %d tensors written", w.path, w.next, len(w.infos))
	}
	return w.out.Commit()
}

// Abort discards the file.
func (w *Writer) Abort() { w.out.Abort() }

// WriteFile writes tensors (in the given order) to path atomically.
func WriteFile(path string, tensors []Tensor, meta map[string]string) error {
	infos := make([]TensorInfo, len(tensors))
	for i, t := range tensors {
		infos[i] = t.Info()
	}
	w, err := NewWriter(path, infos, meta)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}

// ShardName is Hugging Face's shard file naming.
func ShardName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

// PlanShards splits infos (kept in order) into groups of at most maxBytes
// each (a tensor larger than maxBytes gets a shard of its own).
func PlanShards(infos []TensorInfo, maxBytes int64) [][]TensorInfo {
	var shards [][]TensorInfo
	var cur []TensorInfo
	var size int64
	for _, ti := range infos {
		if len(cur) > 0 && size+ti.NumBytes() > maxBytes {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, ti)
		size += ti.NumBytes()
	}
	if len(cur) > 0 {
		shards = append(shards, cur)
	}
	return shards
}

// WriteIndex writes model.safetensors.index.json for the given shards
// (file name -> tensors) atomically.
func WriteIndex(dir string, shards map[string][]TensorInfo) error {
	idx := Index{Metadata: map[string]any{}, WeightMap: map[string]string{}}
	var total int64
	files := make([]string, 0, len(shards))
	for f := range shards {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		for _, ti := range shards[f] {
			idx.WeightMap[ti.Name] = f
			total += ti.NumBytes()
		}
	}
	idx.Metadata["total_size"] = total
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return xio.AtomicWriteFile(filepath.Join(dir, IndexName), append(b, '\n'))
}

// WriteModel writes tensors into dir as model.safetensors, or, when their
// total size exceeds maxShardBytes (> 0), as HF-named shards plus an index.
func WriteModel(dir string, tensors []Tensor, meta map[string]string, maxShardBytes int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	infos := make([]TensorInfo, len(tensors))
	byName := map[string]Tensor{}
	var total int64
	for i, t := range tensors {
		infos[i] = t.Info()
		byName[t.Name] = t
		total += infos[i].NumBytes()
	}
	if maxShardBytes <= 0 || total <= maxShardBytes {
		return WriteFile(filepath.Join(dir, "model.safetensors"), tensors, meta)
	}
	plan := PlanShards(infos, maxShardBytes)
	index := map[string][]TensorInfo{}
	for i, group := range plan {
		name := ShardName(i+1, len(plan))
		ts := make([]Tensor, len(group))
		for j, ti := range group {
			ts[j] = byName[ti.Name]
		}
		if err := WriteFile(filepath.Join(dir, name), ts, meta); err != nil {
			return err
		}
		index[name] = group
	}
	return WriteIndex(dir, index)
}

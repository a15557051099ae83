package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/xio"
)

// ShardFile is what a shard set needs of one checkpoint file (a safetensors
// File here, a PyTorch .bin file in pkg/torchbin).
type ShardFile interface {
	Names() []string
	Info(name string) (TensorInfo, bool)
	Bytes(name string) ([]byte, error)
	Release(b []byte)
	Prefetch(b []byte)
	Close() error
}

// Shards addresses the tensors of one or more files by name.
type Shards[F ShardFile] struct {
	Dir   string
	files []F
	where map[string]F
	names []string
}

// NewShards makes an empty set for the checkpoint at dir.
func NewShards[F ShardFile](dir string) *Shards[F] {
	return &Shards[F]{Dir: dir, where: map[string]F{}}
}

// Add takes in the tensors of f. With a weight map (from an index), every
// tensor of f must be listed there under f's base name; a tensor already
// held by another file is an error.
func (s *Shards[F]) Add(f F, base string, weightMap map[string]string) error {
	s.files = append(s.files, f)
	for _, n := range f.Names() {
		if weightMap != nil && weightMap[n] != base {
			return fmt.Errorf("bad index: tensor %q of %s is missing from the weight_map", n, base)
		}
		if _, dup := s.where[n]; dup {
			return fmt.Errorf("tensor %q appears in two shards", n)
		}
		s.where[n] = f
		s.names = append(s.names, n)
	}
	sort.Strings(s.names)
	return nil
}

// ParseIndex reads and validates a shard index (model.safetensors.index.json
// or pytorch_model.bin.index.json: the same layout).
func ParseIndex(b []byte) (*Index, error) {
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("bad index: %v", err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, errors.New("bad index: empty or missing weight_map")
	}
	for t, s := range idx.WeightMap {
		if s == "" || strings.ContainsAny(s, `/\`) || s == "." || s == ".." {
			return nil, fmt.Errorf("bad index: tensor %q: shard name %q is not a plain file name", t, s)
		}
	}
	return &idx, nil
}

// OpenIndexed opens the shards that the index file idxPath lists (in
// sorted order, with open) and checks that the index and the shards agree.
func OpenIndexed[F ShardFile](dir, idxPath string, open func(path string) (F, error)) (*Shards[F], error) {
	b, err := xio.ReadRegular(idxPath, MaxHeader)
	if err != nil {
		return nil, err
	}
	idx, err := ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", idxPath, err)
	}
	byShard := map[string][]string{}
	for t, s := range idx.WeightMap {
		byShard[s] = append(byShard[s], t)
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	set := NewShards[F](dir)
	for _, s := range shards {
		f, err := open(filepath.Join(dir, s))
		if err != nil {
			set.Close()
			return nil, fmt.Errorf("%s: shard listed in the index: %w", idxPath, err)
		}
		tensors := byShard[s]
		sort.Strings(tensors)
		for _, t := range tensors {
			if _, ok := f.Info(t); !ok {
				set.Close()
				f.Close()
				return nil, fmt.Errorf("%s: bad index: tensor %q is not in shard %s", idxPath, t, s)
			}
		}
		if err := set.Add(f, s, idx.WeightMap); err != nil {
			set.Close()
			return nil, fmt.Errorf("%s: %v", idxPath, err)
		}
	}
	return set, nil
}

// Close closes every file.
func (s *Shards[F]) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Files lists the files in the order they were added.
func (s *Shards[F]) Files() []F { return s.files }

// File is the file holding a tensor.
func (s *Shards[F]) File(name string) (F, bool) {
	f, ok := s.where[name]
	return f, ok
}

// Names lists every tensor, sorted.
func (s *Shards[F]) Names() []string { return append([]string(nil), s.names...) }

// Info describes a tensor.
func (s *Shards[F]) Info(name string) (TensorInfo, bool) {
	f, ok := s.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Bytes returns a tensor's raw little-endian data.
func (s *Shards[F]) Bytes(name string) ([]byte, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.Dir, name)
	}
	return f.Bytes(name)
}

// Release drops the pages of b, a slice returned by Bytes, from the
// resident set.
func (s *Shards[F]) Release(b []byte) {
	for _, f := range s.files {
		f.Release(b)
	}
}

// Prefetch starts reading the pages under b, a slice returned by Bytes.
func (s *Shards[F]) Prefetch(b []byte) {
	for _, f := range s.files {
		f.Prefetch(b)
	}
}

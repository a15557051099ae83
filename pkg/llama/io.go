package llama

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// TokenizerFile is the tokenizer file name inside a model directory.
const TokenizerFile = "tokenizer.model"

// Load reads a Hugging Face model directory for training: config.json and
// model.safetensors (or shards listed in model.safetensors.index.json);
// F32, F16 and BF16 weights become fp32 in the weight arena, and the
// gradient arena is allocated. With tied embeddings a stored
// lm_head.weight is ignored (HF ties it to embed_tokens). Rotary inv_freq
// buffers of old checkpoints are skipped; any other unexpected tensor, a
// missing one or a wrong shape is an error. TokenizerPath is set when the
// directory holds tokenizer.model. It runs on the default backend.
func Load(dir string) (*Model, error) { return load(dir, true, nil) }

// LoadOn is Load on the backend be.
func LoadOn(dir string, be backend.Backend) (*Model, error) { return load(dir, true, be) }

// LoadWeights is Load without allocating gradients (half the memory), for
// conversion. Gradients are allocated by the first ForwardBackward or
// ZeroGrad.
func LoadWeights(dir string) (*Model, error) { return load(dir, false, nil) }

// checkTensors checks the directory's tensors against the model's
// parameters: names, shapes, float dtypes.
func (m *Model) checkTensors(dir string, st *safetensors.Model) error {
	want := map[string]*Param{}
	for _, p := range m.params {
		want[p.Name] = p
	}
	for _, name := range st.Names() {
		if _, ok := want[name]; ok {
			continue
		}
		if strings.HasSuffix(name, "rotary_emb.inv_freq") || (name == "lm_head.weight" && m.Config.TieWordEmbeddings) {
			continue
		}
		return fmt.Errorf("%s: unexpected tensor %q for a LlamaForCausalLM with this config", dir, name)
	}
	for _, p := range m.params {
		info, ok := st.Info(p.Name)
		if !ok {
			return fmt.Errorf("%s: tensor %q missing", dir, p.Name)
		}
		if !sameShape(info.Shape, p.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", dir, p.Name, info.Shape, p.Shape)
		}
		if !info.DType.IsFloat() {
			return fmt.Errorf("%s: tensor %q has dtype %s, want a float type", dir, p.Name, info.DType)
		}
	}
	return nil
}

func load(dir string, grads bool, be backend.Backend) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, checkpointHint(dir, err)
	}
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	// The header must match the config before the model is allocated
	// from the config's numbers, and the model must fit in memory.
	if err := checkHeader(dir, cfg, st); err != nil {
		return nil, err
	}
	if err := cfg.CheckMemory(grads); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m, err := newArena(cfg, grads, be)
	if err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	if err := m.checkTensors(dir, st); err != nil {
		return nil, err
	}
	for _, p := range m.params {
		info, _ := st.Info(p.Name)
		if info.DType == safetensors.F32 {
			b, err := st.Bytes(p.Name)
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %q: %w", dir, p.Name, err)
			}
			if len(b) != 4*p.N {
				return nil, fmt.Errorf("%s: tensor %q holds %d bytes, its shape %v needs %d", dir, p.Name, len(b), p.Shape, 4*p.N)
			}
			m.be.UploadRaw(p.w, b)
			st.Release(b)
			continue
		}
		w, err := st.Float32(p.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", dir, p.Name, err)
		}
		if len(w) != p.N {
			return nil, fmt.Errorf("%s: tensor %q holds %d values, its shape %v needs %d", dir, p.Name, len(w), p.Shape, p.N)
		}
		m.be.Upload(p.w, w)
	}
	if tp := filepath.Join(dir, TokenizerFile); fileExists(tp) {
		m.TokenizerPath = tp
	}
	return m, nil
}

func sameShape(a []int64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != int64(b[i]) {
			return false
		}
	}
	return true
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// DefaultShardBytes is HF save_pretrained's default max_shard_size ("5GB").
const DefaultShardBytes = 5_000_000_000

// Save writes config.json, model.safetensors (HF-style shards above
// DefaultShardBytes) and, when TokenizerPath is set, tokenizer.model into
// dir; see SaveSharded.
func (m *Model) Save(dir string, dtype string) error {
	return m.SaveSharded(dir, dtype, DefaultShardBytes)
}

// SaveSharded writes the model directory atomically: everything goes to a
// temporary sibling directory which then replaces dir (an existing dir is
// replaced as a whole). dtype is float32 (default), float16 or bfloat16
// (any spelling safetensors.ParseDType accepts); config.json's torch_dtype
// says which. With maxShardBytes > 0 and a larger model the weights are
// split into HF-named shards plus model.safetensors.index.json.
func (m *Model) SaveSharded(dir string, dtype string, maxShardBytes int64) error {
	if dtype == "" {
		dtype = "float32"
	}
	dt, err := safetensors.ParseDType(dtype)
	if err != nil {
		return err
	}
	if dt != safetensors.F32 && dt != safetensors.F16 && dt != safetensors.BF16 {
		return fmt.Errorf("llama: save dtype %s not supported (float32, float16, bfloat16)", dt)
	}
	dir = filepath.Clean(dir)
	out, err := xio.CreateDir(dir)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			out.Abort()
		}
	}()
	tmp := out.Path
	cfg := m.Config
	cfg.TorchDtype = dt.TorchName()
	cj, err := cfg.MarshalJSON() // direct call keeps the one-key-per-line layout
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), append(cj, '\n'), 0o644); err != nil {
		return err
	}
	if err := m.writeWeights(tmp, dt, maxShardBytes); err != nil {
		return err
	}
	if m.TokenizerPath != "" {
		if err := copyFile(filepath.Join(tmp, TokenizerFile), m.TokenizerPath); err != nil {
			return fmt.Errorf("copying tokenizer: %w", err)
		}
	}
	if err := out.Commit(); err != nil { // replaces an existing dir
		return err
	}
	ok = true
	if m.TokenizerPath != "" && strings.HasPrefix(m.TokenizerPath, dir+string(filepath.Separator)) {
		// the old copy is gone; point at the new one
		m.TokenizerPath = filepath.Join(dir, TokenizerFile)
	}
	return nil
}

// writeWeights streams the parameters into dir, downloaded and encoded in
// chunks of saveChunk elements (peak extra memory: one chunk), as model.safetensors or HF shards
// plus index when the total exceeds maxShardBytes (> 0).
func (m *Model) writeWeights(dir string, dt safetensors.DType, maxShardBytes int64) error {
	infos := make([]safetensors.TensorInfo, len(m.params))
	byName := map[string]*Param{}
	var total int64
	for i, p := range m.params {
		shape := make([]int64, len(p.Shape))
		for j, s := range p.Shape {
			shape[j] = int64(s)
		}
		infos[i] = safetensors.TensorInfo{Name: p.Name, DType: dt, Shape: shape}
		byName[p.Name] = p
		total += infos[i].NumBytes()
	}
	meta := map[string]string{"format": "pt"}
	host := make([]float32, min(saveChunk, maxN(m.params)))
	write := func(path string, group []safetensors.TensorInfo) error {
		w, err := safetensors.NewWriter(path, group, meta)
		if err != nil {
			return err
		}
		for _, ti := range group {
			if err := m.streamTensor(w, ti.Name, byName[ti.Name].w, dt, host); err != nil {
				w.Abort()
				return err
			}
		}
		return w.Commit()
	}
	if maxShardBytes <= 0 || total <= maxShardBytes {
		return write(filepath.Join(dir, "model.safetensors"), infos)
	}
	plan := safetensors.PlanShards(infos, maxShardBytes)
	index := map[string][]safetensors.TensorInfo{}
	for i, group := range plan {
		name := safetensors.ShardName(i+1, len(plan))
		if err := write(filepath.Join(dir, name), group); err != nil {
			return err
		}
		index[name] = group
	}
	return safetensors.WriteIndex(dir, index)
}

// saveChunk is the number of elements Save downloads and encodes at once
// (a variable so that tests can make chunks smaller than tensors).
var saveChunk = 1 << 20

func maxN(ps []*Param) int {
	n := 0
	for _, p := range ps {
		n = max(n, p.N)
	}
	return n
}

// StreamTensor writes the buffer b (any float dtype) as the next tensor of
// w, encoded as dt, downloading it through be in chunks of len(host)
// elements.
func StreamTensor(be backend.Backend, w *safetensors.Writer, name string, b backend.Buffer, dt safetensors.DType, host []float32) error {
	if err := w.Begin(name); err != nil {
		return err
	}
	for off := 0; off < b.Len(); off += len(host) {
		n := min(len(host), b.Len()-off)
		be.Download(host[:n], b.Slice(off, off+n))
		data, err := safetensors.EncodeFloat32(dt, host[:n])
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) streamTensor(w *safetensors.Writer, name string, b backend.Buffer, dt safetensors.DType, host []float32) error {
	return StreamTensor(m.be, w, name, b, dt, host)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// checkpointHint turns "no config.json" for a trainer's output directory
// that holds checkpoints but no final model (a run stopped early) into an
// error naming the newest checkpoint and how to make it a model.
func checkpointHint(dir string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ents, rerr := os.ReadDir(dir)
	if rerr != nil {
		return err
	}
	best, bestN := "", -1
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if !ok || !e.IsDir() {
			continue
		}
		n, cerr := strconv.Atoi(rest)
		if cerr != nil || n <= bestN {
			continue
		}
		if _, serr := os.Stat(filepath.Join(dir, e.Name(), "config.json")); serr == nil {
			best, bestN = filepath.Join(dir, e.Name()), n
		}
	}
	if best == "" {
		return err
	}
	return fmt.Errorf("%s holds no final model, only training checkpoints (the newest is %s): make it a model with `trainer finalize %s`, continue the run with `trainer --resume %s`, or use the checkpoint directly", dir, best, dir, dir)
}

package llama

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/torchmath"
)

// Param is one weight tensor: its Hugging Face name, shape (HF's: [out, in]
// for linears) and place in the model's arenas. A training model keeps
// every weight in one contiguous backend buffer (the weight arena), every
// gradient in another laid out alike (and the trainer's AdamW moments in
// two more): the parameter is elements [Off, Off+N) of each.
type Param struct {
	Name  string
	Shape []int
	Off   int // element offset in the arenas
	N     int // number of elements

	w, g backend.Buffer // views: weights (arena view, or its own buffer for Open), gradient
}

// Numel is the number of elements.
func (p *Param) Numel() int { return p.N }

// Span is the parameter's arena range, with the trainer's weight-decay
// rule given by decay.
func (p *Param) Span(decay bool) backend.Span {
	return backend.Span{Off: p.Off, Len: p.N, Decay: decay}
}

// Batch is B rows of T positions (packed examples). Position i may attend to
// j <= i only when Seg[j] == Seg[i] (no cross-example attention); Seg -1
// marks padding. Pos holds position ids (restarting at 0 per example).
// Target[i] is the id to predict at position i, or -1 (ignored).
type Batch struct {
	B, T                     int
	Tokens, Pos, Seg, Target []int32
}

type layer struct {
	inNorm, q, k, v, o, postNorm, gate, up, down *Param
}

// Model is a LlamaForCausalLM. Its tensors live in backend buffers: for
// training, fp32 weights and gradients in two arenas; for inference (Open),
// weights as stored (bf16/f16 kept, memory-mapped on the CPU). A Model is
// not safe for concurrent use.
type Model struct {
	Config Config
	// TokenizerPath, when set, is copied into the directory by Save as
	// tokenizer.model (Load sets it to the loaded directory's file).
	TokenizerPath string

	be     backend.Backend
	embed  *Param
	layers []layer
	norm   *Param
	lmHead *Param // == embed when TieWordEmbeddings
	params []*Param

	arenaLen       int            // elements of each arena (offsets aligned)
	wArena, gArena backend.Buffer // gArena nil until gradients are needed
	closer         io.Closer      // memory-mapped weights of Open

	ropeCos, ropeSin backend.Buffer
	ropeLen          int
	act              acts // views of actBack for the current batch size
	actBack          acts // buffers for actCap positions
	actCap           int
	inf              inferBufs
	fwdLogits        backend.Buffer
	lora             *LoRA // attached adapter: the base is frozen
}

// arenaAlign is the alignment (elements) of each parameter in the arenas:
// 64 bytes, a cache line.
const arenaAlign = 16

// New makes a randomly initialised model like Hugging Face does: every
// linear and embedding weight ~ normal(0, initializer_range) (the
// pad_token_id row of the embedding, if set, is zero), norms = 1. Each
// tensor draws from its own PCG stream seeded by (seed, index), so init is
// reproducible and parallel. New panics on an invalid config (call
// Validate first). It runs on the default backend (DefaultBackend).
func New(cfg Config, seed int64) *Model { return NewOn(cfg, seed, nil) }

// NewOn is New on the backend be (nil: the default backend).
func NewOn(cfg Config, seed int64, be backend.Backend) *Model {
	return newInit(cfg, seed, be, true)
}

// newInit is NewOn, with a gradient arena only when grads.
func newInit(cfg Config, seed int64, be backend.Backend, grads bool) *Model {
	m := newEmpty(cfg, grads, be)
	std := cfg.InitializerRange
	var wg sync.WaitGroup
	for i, p := range m.params {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// generated and uploaded in chunks: no host copy of the model
			w := make([]float32, min(p.N, 1<<16))
			r := rand.New(rand.NewPCG(uint64(seed), uint64(i)+0x9e3779b97f4a7c15))
			pad, hasPad := cfg.PadTokenID()
			hasPad = hasPad && p == m.embed && pad >= 0 && pad < cfg.VocabSize
			for off := 0; off < p.N; off += len(w) {
				c := w[:min(len(w), p.N-off)]
				for j := range c {
					if len(p.Shape) == 1 {
						c[j] = 1
					} else {
						c[j] = float32(r.NormFloat64() * std)
					}
					if hasPad && (off+j)/cfg.HiddenSize == pad {
						c[j] = 0
					}
				}
				m.be.Upload(p.w.Slice(off, off+len(c)), c)
			}
		}()
	}
	wg.Wait()
	return m
}

// makeParams lists the parameters of the config in HF state_dict order and
// lays them out in the arenas.
func (m *Model) makeParams() {
	cfg := m.Config
	D, I, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	Dkv := cfg.NumKeyValueHeads * cfg.HeadDim()
	np := func(name string, shape ...int) *Param {
		n := 1
		for _, s := range shape {
			n *= s
		}
		p := &Param{Name: name, Shape: shape, N: n}
		m.params = append(m.params, p)
		return p
	}
	m.params, m.layers = nil, nil
	m.embed = np("model.embed_tokens.weight", V, D)
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		pre := fmt.Sprintf("model.layers.%d.", l)
		var ly layer
		ly.q = np(pre+"self_attn.q_proj.weight", D, D)
		ly.k = np(pre+"self_attn.k_proj.weight", Dkv, D)
		ly.v = np(pre+"self_attn.v_proj.weight", Dkv, D)
		ly.o = np(pre+"self_attn.o_proj.weight", D, D)
		ly.gate = np(pre+"mlp.gate_proj.weight", I, D)
		ly.up = np(pre+"mlp.up_proj.weight", I, D)
		ly.down = np(pre+"mlp.down_proj.weight", D, I)
		ly.inNorm = np(pre+"input_layernorm.weight", D)
		ly.postNorm = np(pre+"post_attention_layernorm.weight", D)
		m.layers = append(m.layers, ly)
	}
	m.norm = np("model.norm.weight", D)
	if cfg.TieWordEmbeddings {
		m.lmHead = m.embed
	} else {
		m.lmHead = np("lm_head.weight", V, D)
	}
	off := 0
	for _, p := range m.params {
		p.Off = off
		off += (p.N + arenaAlign - 1) / arenaAlign * arenaAlign
	}
	m.arenaLen = off
}

// newEmpty allocates a zero model for cfg on be (nil: default), with the
// weight arena, and the gradient arena when grads.
func newEmpty(cfg Config, grads bool, be backend.Backend) *Model {
	m, err := newArena(cfg, grads, be)
	if err != nil {
		panic("llama: " + err.Error())
	}
	return m
}

func newArena(cfg Config, grads bool, be backend.Backend) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if be == nil {
		var err error
		if be, err = DefaultBackend(); err != nil {
			return nil, err
		}
	}
	m := &Model{Config: cfg, be: be}
	m.makeParams()
	w, err := be.Alloc(backend.F32, m.arenaLen)
	if err != nil {
		return nil, fmt.Errorf("allocating the weights (%d floats): %w", m.arenaLen, err)
	}
	m.wArena = w
	for _, p := range m.params {
		p.w = w.Slice(p.Off, p.Off+p.N)
	}
	if grads {
		if err := m.ensureGrads(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ensureGrads allocates the gradient arena (models from LoadWeights).
func (m *Model) ensureGrads() error {
	if !m.gArena.IsNil() {
		return nil
	}
	if m.wArena.IsNil() {
		return fmt.Errorf("llama: this model was opened for inference (weights as stored); training needs Load")
	}
	g, err := m.be.Alloc(backend.F32, m.arenaLen)
	if err != nil {
		return fmt.Errorf("allocating the gradients (%d floats): %w", m.arenaLen, err)
	}
	m.gArena = g
	for _, p := range m.params {
		p.g = g.Slice(p.Off, p.Off+p.N)
	}
	return nil
}

var (
	defBackendOnce sync.Once
	defBackend     backend.Backend
	defBackendErr  error
)

// DefaultBackend is the backend New, Load and Open use when none is given:
// the registered "cpu" backend with GOMAXPROCS threads. A program links it
// in by importing github.com/alpaca-go/alpaca/pkg/backend/cpu (the llama
// package does not import any backend itself).
func DefaultBackend() (backend.Backend, error) {
	defBackendOnce.Do(func() {
		defBackend, defBackendErr = backend.Open("cpu", backend.Options{})
		if defBackendErr != nil {
			defBackendErr = fmt.Errorf("%w (import _ \"github.com/alpaca-go/alpaca/pkg/backend/cpu\")", defBackendErr)
		}
	})
	return defBackend, defBackendErr
}

// Backend returns the backend the model computes with.
func (m *Model) Backend() backend.Backend { return m.be }

// SetBackend switches to another instance of the same kind of backend (for
// the CPU: another thread count); the model's buffers stay where they are.
func (m *Model) SetBackend(b backend.Backend) { m.be = b }

// Params returns the parameters in a stable order: Hugging Face's
// state_dict order (embed_tokens, then per layer q,k,v,o, gate,up,down,
// input_layernorm, post_attention_layernorm, then model.norm, lm_head when
// untied). With tied embeddings there is no lm_head.weight parameter.
func (m *Model) Params() []*Param { return m.params }

// Param returns the parameter with the given HF name, or nil.
func (m *Model) Param(name string) *Param {
	for _, p := range m.params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Weights is the weight arena (all parameters, fp32, at their Off); nil
// (IsNil) for a model opened for inference with weights as stored.
func (m *Model) Weights() backend.Buffer { return m.wArena }

// Grads is the gradient arena, laid out like Weights (allocated on first
// use).
func (m *Model) Grads() backend.Buffer {
	if err := m.ensureGrads(); err != nil {
		panic(err)
	}
	return m.gArena
}

// ArenaLen is the number of elements of each arena (parameters plus
// alignment gaps).
func (m *Model) ArenaLen() int { return m.arenaLen }

// Weight is the buffer holding p's weights.
func (m *Model) Weight(p *Param) backend.Buffer { return p.w }

// Grad is the buffer holding p's gradient (nil before gradients exist).
func (m *Model) Grad(p *Param) backend.Buffer { return p.g }

// ReadWeights downloads p's weights as float32 (a new slice).
func (m *Model) ReadWeights(p *Param) []float32 {
	v := make([]float32, p.N)
	m.be.Download(v, p.w)
	return v
}

// WriteWeights uploads v (len p.Numel()) as p's weights.
func (m *Model) WriteWeights(p *Param, v []float32) { m.be.Upload(p.w, v) }

// ReadGrad downloads p's gradient (zeros before gradients exist).
func (m *Model) ReadGrad(p *Param) []float32 {
	v := make([]float32, p.N)
	if !p.g.IsNil() {
		m.be.Download(v, p.g)
	}
	return v
}

// NumParams is the number of distinct weights.
func (m *Model) NumParams() int {
	n := 0
	for _, p := range m.params {
		n += p.N
	}
	return n
}

// ZeroGrad sets every gradient to zero (allocating them if needed).
func (m *Model) ZeroGrad() {
	if err := m.ensureGrads(); err != nil {
		panic(err)
	}
	m.be.Zero(m.gArena)
}

// Close releases memory-mapped weights (models from Open); the model must
// not be used afterwards.
func (m *Model) Close() error {
	if m.closer != nil {
		err := m.closer.Close()
		m.closer = nil
		return err
	}
	return nil
}

// AddPadToken is Alpaca's smart_tokenizer_and_embedding_resize for one new
// token: embed_tokens (and lm_head when untied) get one extra row, set to
// the mean of the existing rows, computed in float32 in torch's order
// (torchmath.MeanRows) so the row equals the one Alpaca's train.py makes.
// VocabSize grows by one; gradients are reset to zero. It returns the new
// token's id. The arenas are re-laid out.
func (m *Model) AddPadToken() int {
	if m.wArena.IsNil() {
		panic("llama: AddPadToken on a model opened for inference")
	}
	V, D := m.Config.VocabSize, m.Config.HiddenSize
	old := make(map[string]*Param, len(m.params))
	for _, p := range m.params {
		old[p.Name] = p
	}
	oldW, hadGrads := m.wArena, !m.gArena.IsNil()
	m.Config.VocabSize = V + 1
	m.makeParams()
	w, err := m.be.Alloc(backend.F32, m.arenaLen)
	if err != nil {
		panic("llama: " + err.Error())
	}
	for _, p := range m.params {
		p.w = w.Slice(p.Off, p.Off+p.N)
		o := old[p.Name]
		m.be.Copy(p.w.Slice(0, o.N), o.w)
		if p == m.embed || p == m.lmHead {
			host := make([]float32, o.N)
			m.be.Download(host, o.w)
			mean := torchmath.MeanRows(int64(V), int64(D), func(r int64, dst []float32) {
				copy(dst, host[r*int64(D):(r+1)*int64(D)])
			})
			m.be.Upload(p.w.Slice(V*D, (V+1)*D), mean)
		}
	}
	m.be.Free(oldW)
	m.wArena = w
	if hadGrads {
		m.be.Free(m.gArena)
		m.gArena = backend.Buffer{}
		if err := m.ensureGrads(); err != nil {
			panic(err)
		}
	}
	m.ReleaseBuffers()
	return V
}

// rope makes sure the cos/sin tables cover positions < n. The tables follow
// HF's fp32 arithmetic: inv_freq = 1/theta^(2i/d) in fp32, angle =
// float32(pos)*inv_freq rounded to fp32, then cos/sin of that angle.
func (m *Model) rope(n int) error {
	if n <= m.ropeLen {
		return nil
	}
	n = max(n, m.Config.MaxPositionEmbeddings, 2*m.ropeLen)
	hd := m.Config.HeadDim()
	half := hd / 2
	inv := make([]float32, half)
	for i := range inv {
		e := float32(2*i) / float32(hd)
		inv[i] = float32(1 / float32(math.Pow(m.Config.RopeTheta, float64(e))))
	}
	cos := make([]float32, n*half)
	sin := make([]float32, n*half)
	for p := 0; p < n; p++ {
		for i := 0; i < half; i++ {
			a := float32(p) * inv[i]
			cos[p*half+i] = float32(math.Cos(float64(a)))
			sin[p*half+i] = float32(math.Sin(float64(a)))
		}
	}
	cb, err := m.be.Alloc(backend.F32, n*half)
	if err != nil {
		return err
	}
	sb, err := m.be.Alloc(backend.F32, n*half)
	if err != nil {
		return err
	}
	m.be.Upload(cb, cos)
	m.be.Upload(sb, sin)
	if !m.ropeCos.IsNil() {
		m.be.Free(m.ropeCos)
		m.be.Free(m.ropeSin)
	}
	m.ropeCos, m.ropeSin, m.ropeLen = cb, sb, n
	return nil
}

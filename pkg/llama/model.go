package llama

import (
	"fmt"
	"github.com/alpaca-go/alpaca/pkg/torchmath"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
)

// Param is one weight tensor with its Hugging Face name, fp32 master weights
// W and gradient G (same length). Shape is HF's ([out, in] for linears).
type Param struct {
	Name  string
	Shape []int
	W, G  []float32
}

// Numel is the number of elements.
func (p *Param) Numel() int { return len(p.W) }

func newParam(name string, shape ...int) *Param {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return &Param{Name: name, Shape: shape, W: make([]float32, n)}
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

// Model is a LlamaForCausalLM with fp32 weights and gradients. A Model is
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

	ropeCos, ropeSin []float32
	ropeLen          int
	act              acts // views of actBack for the current batch size
	actBack          acts // buffers for actCap positions
	actCap           int
}

// New makes a randomly initialised model like Hugging Face does: every
// linear and embedding weight ~ normal(0, initializer_range) (the
// pad_token_id row of the embedding, if set, is zero), norms = 1. Each
// tensor draws from its own PCG stream seeded by (seed, index), so init is
// reproducible and parallel. New panics on an invalid config (call
// Validate first).
func New(cfg Config, seed int64) *Model {
	m := newEmpty(cfg, true)
	std := cfg.InitializerRange
	var wg sync.WaitGroup
	for i, p := range m.params {
		if len(p.Shape) == 1 {
			for j := range p.W {
				p.W[j] = 1
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(seed), uint64(i)+0x9e3779b97f4a7c15))
			for j := range p.W {
				p.W[j] = float32(r.NormFloat64() * std)
			}
		}()
	}
	wg.Wait()
	if pad, ok := cfg.PadTokenID(); ok && pad >= 0 && pad < cfg.VocabSize {
		clear(m.embed.W[pad*cfg.HiddenSize : (pad+1)*cfg.HiddenSize])
	}
	return m
}

// newEmpty allocates a zero model for cfg, with gradients when grads.
func newEmpty(cfg Config, grads bool) *Model {
	if err := cfg.Validate(); err != nil {
		panic("llama: " + err.Error())
	}
	D, I, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	Dkv := cfg.NumKeyValueHeads * cfg.HeadDim()
	m := &Model{Config: cfg, be: defaultBackend()}
	m.embed = newParam("model.embed_tokens.weight", V, D)
	m.params = append(m.params, m.embed)
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		pre := fmt.Sprintf("model.layers.%d.", l)
		ly := layer{
			q:        newParam(pre+"self_attn.q_proj.weight", D, D),
			k:        newParam(pre+"self_attn.k_proj.weight", Dkv, D),
			v:        newParam(pre+"self_attn.v_proj.weight", Dkv, D),
			o:        newParam(pre+"self_attn.o_proj.weight", D, D),
			gate:     newParam(pre+"mlp.gate_proj.weight", I, D),
			up:       newParam(pre+"mlp.up_proj.weight", I, D),
			down:     newParam(pre+"mlp.down_proj.weight", D, I),
			inNorm:   newParam(pre+"input_layernorm.weight", D),
			postNorm: newParam(pre+"post_attention_layernorm.weight", D),
		}
		m.layers = append(m.layers, ly)
		m.params = append(m.params, ly.q, ly.k, ly.v, ly.o, ly.gate, ly.up, ly.down, ly.inNorm, ly.postNorm)
	}
	m.norm = newParam("model.norm.weight", D)
	m.params = append(m.params, m.norm)
	if cfg.TieWordEmbeddings {
		m.lmHead = m.embed
	} else {
		m.lmHead = newParam("lm_head.weight", V, D)
		m.params = append(m.params, m.lmHead)
	}
	if grads {
		m.ensureGrads()
	}
	return m
}

// ensureGrads allocates missing gradients (models from LoadWeights).
func (m *Model) ensureGrads() {
	for _, p := range m.params {
		if p.G == nil {
			p.G = make([]float32, len(p.W))
		}
	}
}

var (
	defBackendOnce sync.Once
	defBackend     backend.Backend
)

func defaultBackend() backend.Backend {
	defBackendOnce.Do(func() { defBackend = cpu.New(0) })
	return defBackend
}

// Backend returns the backend the model computes with (default: the CPU
// reference using GOMAXPROCS threads).
func (m *Model) Backend() backend.Backend { return m.be }

// SetBackend switches the backend.
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

// NumParams is the number of distinct weights.
func (m *Model) NumParams() int {
	n := 0
	for _, p := range m.params {
		n += len(p.W)
	}
	return n
}

// ZeroGrad sets every gradient to zero (allocating them if needed).
func (m *Model) ZeroGrad() {
	m.ensureGrads()
	for _, p := range m.params {
		clear(p.G)
	}
}

// AddPadToken is Alpaca's smart_tokenizer_and_embedding_resize for one new
// token: embed_tokens (and lm_head when untied) get one extra row, set to
// the mean of the existing rows, computed in float32 in torch's order
// (torchmath.MeanRows) so the row equals the one Alpaca's train.py makes.
// VocabSize grows by one; gradients are reset to zero. It returns the new
// token's id.
func (m *Model) AddPadToken() int {
	V, D := m.Config.VocabSize, m.Config.HiddenSize
	grow := func(p *Param) {
		w := make([]float32, (V+1)*D)
		copy(w, p.W)
		mean := torchmath.MeanRows(int64(V), int64(D), func(r int64, dst []float32) {
			copy(dst, p.W[r*int64(D):(r+1)*int64(D)])
		})
		copy(w[V*D:], mean)
		p.W = w
		if p.G != nil {
			p.G = make([]float32, (V+1)*D)
		}
		p.Shape = []int{V + 1, D}
	}
	grow(m.embed)
	if m.lmHead != m.embed {
		grow(m.lmHead)
	}
	m.Config.VocabSize = V + 1
	for _, p := range m.params {
		clear(p.G)
	}
	return V
}

// rope makes sure the cos/sin tables cover positions < n. The tables follow
// HF's fp32 arithmetic: inv_freq = 1/theta^(2i/d) in fp32, angle =
// float32(pos)*inv_freq rounded to fp32, then cos/sin of that angle.
func (m *Model) rope(n int) {
	if n <= m.ropeLen {
		return
	}
	n = max(n, m.Config.MaxPositionEmbeddings, 2*m.ropeLen)
	hd := m.Config.HeadDim()
	half := hd / 2
	inv := make([]float32, half)
	for i := range inv {
		e := float32(2*i) / float32(hd)
		inv[i] = float32(1 / float32(math.Pow(m.Config.RopeTheta, float64(e))))
	}
	m.ropeCos = make([]float32, n*half)
	m.ropeSin = make([]float32, n*half)
	for p := 0; p < n; p++ {
		for i := 0; i < half; i++ {
			a := float32(p) * inv[i]
			m.ropeCos[p*half+i] = float32(math.Cos(float64(a)))
			m.ropeSin[p*half+i] = float32(math.Sin(float64(a)))
		}
	}
	m.ropeLen = n
}

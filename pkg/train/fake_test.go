package train

import (
	"math"
	"math/rand"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// bigram is a small model with exact gradients for testing the loop on its
// own: logits(t) = lm_head · embed[token t] (no attention, so it ignores
// positions and segments). nanAt makes the nth ForwardBackward call (1-based)
// return NaN.
type bigram struct {
	V, H   int
	ps     []*llama.Param
	w, g   []float32 // the arenas (CPU backend buffers' memory)
	be     *cpu.CPU
	calls  int
	nanAt  int
	params []*fakeParam
}

// fakeParam is a parameter with its host views into the arenas.
type fakeParam struct {
	*llama.Param
	W, G []float32
}

func newBigram(V, H int, seed int64) *bigram {
	r := rand.New(rand.NewSource(seed))
	m := &bigram{V: V, H: H, be: cpu.New(0)}
	gap := 3 // parameters are not adjacent in the arena, like llama's aligned layout
	n := 2*V*H + gap
	m.w, m.g = make([]float32, n), make([]float32, n)
	for i, name := range []string{"model.embed_tokens.weight", "lm_head.weight"} {
		off := i * (V*H + gap)
		p := &llama.Param{Name: name, Shape: []int{V, H}, Off: off, N: V * H}
		fp := &fakeParam{Param: p, W: m.w[off : off+V*H], G: m.g[off : off+V*H]}
		for i := range fp.W {
			fp.W[i] = float32(r.NormFloat64() * 0.5)
		}
		m.ps = append(m.ps, p)
		m.params = append(m.params, fp)
	}
	return m
}

func (m *bigram) Backend() backend.Backend { return m.be }
func (m *bigram) Params() []*llama.Param   { return m.ps }
func (m *bigram) Weights() backend.Buffer  { return cpu.Wrap(m.w) }
func (m *bigram) Grads() backend.Buffer    { return cpu.Wrap(m.g) }

func (m *bigram) ZeroGrad() { clear(m.g) }

func (m *bigram) Save(dir, dtype string) error {
	var ts []safetensors.Tensor
	for _, p := range m.params {
		data, err := safetensors.EncodeFloat32(safetensors.F32, p.W)
		if err != nil {
			return err
		}
		ts = append(ts, safetensors.Tensor{Name: p.Name, DType: safetensors.F32, Shape: []int64{int64(m.V), int64(m.H)}, Data: data})
	}
	return safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, nil)
}

func (m *bigram) ForwardBackward(b *llama.Batch, scale float32) (float64, int, error) {
	m.calls++
	V, H := m.V, m.H
	E, L := m.params[0], m.params[1]
	var sum float64
	n := 0
	logits := make([]float64, V)
	for i := 0; i < b.B*b.T; i++ {
		if b.Target[i] < 0 {
			continue
		}
		e := E.W[int(b.Tokens[i])*H:][:H]
		mx := math.Inf(-1)
		for v := 0; v < V; v++ {
			s := 0.0
			for h := 0; h < H; h++ {
				s += float64(L.W[v*H+h]) * float64(e[h])
			}
			logits[v] = s
			mx = math.Max(mx, s)
		}
		z := 0.0
		for v := range logits {
			z += math.Exp(logits[v] - mx)
		}
		t := int(b.Target[i])
		sum += mx + math.Log(z) - logits[t]
		n++
		ge := E.G[int(b.Tokens[i])*H:][:H]
		for v := 0; v < V; v++ {
			d := math.Exp(logits[v]-mx) / z
			if v == t {
				d--
			}
			d *= float64(scale)
			for h := 0; h < H; h++ {
				L.G[v*H+h] += float32(d * float64(e[h]))
				ge[h] += float32(d * float64(L.W[v*H+h]))
			}
		}
	}
	if m.calls == m.nanAt {
		sum = math.NaN()
	}
	return sum, n, nil
}

// synthData makes n examples over a vocabulary of V: a prompt of random
// tokens (masked out) followed by a completion in which each token
// determines the next (token+1 mod V), so a bigram model can learn it.
func synthData(n, V int, seed int64) *Dataset {
	r := rand.New(rand.NewSource(seed))
	d := &Dataset{Name: "synth", Header: tokstream.Header{VocabSize: V, BOS: 1, EOS: 2, Pad: -1}}
	for i := 0; i < n; i++ {
		pl, cl := 1+r.Intn(5), 2+r.Intn(8)
		ex := tokstream.Example{}
		for j := 0; j < pl; j++ {
			ex.IDs = append(ex.IDs, int32(r.Intn(V)))
			ex.Mask = append(ex.Mask, false)
		}
		tok := (ex.IDs[pl-1] + 1) % int32(V)
		for j := 0; j < cl; j++ {
			ex.IDs = append(ex.IDs, tok)
			ex.Mask = append(ex.Mask, true)
			tok = (tok + 1) % int32(V)
		}
		d.Examples = append(d.Examples, ex)
		d.Tokens += len(ex.IDs)
		d.Targets += cl
	}
	d.Hash = "synth"
	return d
}

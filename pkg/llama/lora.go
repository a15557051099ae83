package llama

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend"
)

// LoRA (Hu et al. 2021) as PEFT implements it for a LlamaForCausalLM: each
// targeted linear y = x·Wᵀ becomes
//
//	y = x·Wᵀ + (α/r) · dropout(x)·Aᵀ·Bᵀ      A [r, in], B [out, r]
//
// with W frozen. A starts Kaiming-uniform with a=√5 (U(−1/√in, 1/√in)), B
// at zero, so the model starts exactly as the base. The adapter's tensors
// live in their own arenas (weights, gradients; the trainer's AdamW moments
// in two more), so clipping and AdamW run over the adapter only; the frozen
// base has no gradient arena and may keep bf16/f16 weights.

// LoRATargets are the linear layers an adapter can target, in the order
// they appear in a decoder layer.
var LoRATargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// Target kinds, indices into LoRATargets.
const (
	tQ = iota
	tK
	tV
	tO
	tGate
	tUp
	tDown
	numTargets
)

// MaxLoRARank bounds r (adapter files are untrusted).
const MaxLoRARank = 4096

// LoRAConfig is an adapter's shape and training settings (PEFT's
// LoraConfig fields of the same names).
type LoRAConfig struct {
	R       int      `json:"r"`
	Alpha   float64  `json:"lora_alpha"`
	Dropout float64  `json:"lora_dropout"`
	Targets []string `json:"target_modules"`
}

// DefaultLoRAConfig is alpaca-lora's: r 8, alpha 16, dropout 0.05 on
// q_proj and v_proj.
func DefaultLoRAConfig() LoRAConfig {
	return LoRAConfig{R: 8, Alpha: 16, Dropout: 0.05, Targets: []string{"q_proj", "v_proj"}}
}

// Scale is PEFT's scaling, alpha/r.
func (c LoRAConfig) Scale() float32 { return float32(c.Alpha / float64(c.R)) }

// Validate checks the configuration.
func (c LoRAConfig) Validate() error {
	switch {
	case c.R < 1 || c.R > MaxLoRARank:
		return fmt.Errorf("LoRA rank r %d outside [1, %d]", c.R, MaxLoRARank)
	case math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) || c.Alpha == 0:
		return fmt.Errorf("LoRA alpha %v is not a non-zero number", c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("LoRA dropout %v outside [0, 1)", c.Dropout)
	case len(c.Targets) == 0:
		return fmt.Errorf("no LoRA target modules")
	}
	seen := map[string]bool{}
	for _, t := range c.Targets {
		if targetKind(t) < 0 {
			return fmt.Errorf("LoRA target %q: want some of %s", t, strings.Join(LoRATargets, ","))
		}
		if seen[t] {
			return fmt.Errorf("LoRA target %q given twice", t)
		}
		seen[t] = true
	}
	return nil
}

func targetKind(name string) int {
	return slices.Index(LoRATargets, name)
}

// loraMod is the adapter of one linear layer.
type loraMod struct {
	layer, kind int
	in, out     int
	a, b        *Param
	u           backend.Buffer // dropout(x)·Aᵀ of the step, [N, r] (view)
	mask        backend.Buffer // dropout mask of the step, [N, in] (view; dropout > 0)
	uBack, mBak backend.Buffer
}

// LoRA is an adapter attached to a Model (AddLoRA, LoadAdapter). While one
// is attached the base weights are frozen: ForwardBackward computes the
// adapter's gradients only (the input gradients still flow through every
// layer).
type LoRA struct {
	cfg   LoRAConfig
	scale float32
	// BaseModel is recorded in adapter_config.json
	// (base_model_name_or_path).
	BaseModel string
	// DropoutCalls counts the ForwardBackward passes made with dropout: the
	// masks of a pass are drawn from the PCG stream (seed, DropoutCalls,
	// layer, target), so a resumed run that restores the counter draws
	// the same masks.
	DropoutCalls uint64
	seed         uint64
	be           backend.Backend

	params   []*Param
	mods     [][numTargets]*loraMod // per layer
	arenaLen int
	w, g     backend.Buffer

	capN, n           int
	du, xd, tmp, norm backend.Buffer // step scratch
	maskHost          []float32
}

// Config returns the adapter's configuration.
func (l *LoRA) Config() LoRAConfig { return l.cfg }

// Params lists the adapter's tensors with PEFT's names, per layer in
// LoRATargets order, A before B.
func (l *LoRA) Params() []*Param { return l.params }

// Weights is the adapter's weight arena (fp32).
func (l *LoRA) Weights() backend.Buffer { return l.w }

// Grads is the adapter's gradient arena, laid out like Weights.
func (l *LoRA) Grads() backend.Buffer { return l.g }

// ArenaLen is the length of the adapter's arenas.
func (l *LoRA) ArenaLen() int { return l.arenaLen }

// LoRA returns the attached adapter, or nil.
func (m *Model) LoRA() *LoRA { return m.lora }

// PEFTName is the PEFT state_dict name of a LoRA tensor ("A" or "B") of
// layer l's target (q_proj, ..., down_proj).
func PEFTName(l int, target, ab string) string {
	block := "self_attn"
	if k := targetKind(target); k >= tGate {
		block = "mlp"
	}
	return fmt.Sprintf("base_model.model.model.layers.%d.%s.%s.lora_%s.weight", l, block, target, ab)
}

// dims returns (in, out) of a target kind.
func (m *Model) dims(kind int) (in, out int) {
	c := m.Config
	D, I, Dkv := c.HiddenSize, c.IntermediateSize, c.NumKeyValueHeads*c.HeadDim()
	switch kind {
	case tK, tV:
		return D, Dkv
	case tGate, tUp:
		return D, I
	case tDown:
		return I, D
	}
	return D, D
}

// newLoRA lays out an adapter with modules where has(layer, kind) and
// allocates its arenas (zero).
func (m *Model) newLoRA(cfg LoRAConfig, has func(l, kind int) bool) (*LoRA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &LoRA{cfg: cfg, scale: cfg.Scale(), be: m.be}
	off := 0
	np := func(name string, shape ...int) *Param {
		p := &Param{Name: name, Shape: shape, N: shape[0] * shape[1], Off: off}
		off += (p.N + arenaAlign - 1) / arenaAlign * arenaAlign
		l.params = append(l.params, p)
		return p
	}
	l.mods = make([][numTargets]*loraMod, m.Config.NumHiddenLayers)
	for li := range l.mods {
		for k := 0; k < numTargets; k++ {
			if !has(li, k) {
				continue
			}
			in, out := m.dims(k)
			md := &loraMod{layer: li, kind: k, in: in, out: out}
			md.a = np(PEFTName(li, LoRATargets[k], "A"), cfg.R, in)
			md.b = np(PEFTName(li, LoRATargets[k], "B"), out, cfg.R)
			l.mods[li][k] = md
		}
	}
	if len(l.params) == 0 {
		return nil, fmt.Errorf("the adapter has no LoRA module")
	}
	l.arenaLen = off
	var err error
	if l.w, err = m.be.Alloc(backend.F32, off); err != nil {
		return nil, fmt.Errorf("allocating the adapter (%d floats): %w", off, err)
	}
	if l.g, err = m.be.Alloc(backend.F32, off); err != nil {
		m.be.Free(l.w)
		return nil, fmt.Errorf("allocating the adapter's gradients (%d floats): %w", off, err)
	}
	for _, p := range l.params {
		p.w = l.w.Slice(p.Off, p.Off+p.N)
		p.g = l.g.Slice(p.Off, p.Off+p.N)
	}
	return l, nil
}

// AddLoRA attaches a fresh adapter initialised as PEFT does: A
// Kaiming-uniform with a=√5 (U(−1/√in, 1/√in), each tensor from its own
// PCG stream seeded by (seed, index)), B zero. From now on the base is
// frozen. It replaces an attached adapter.
func (m *Model) AddLoRA(cfg LoRAConfig, seed int64) (*LoRA, error) {
	l, err := m.newLoRA(cfg, func(_, k int) bool { return slices.Contains(cfg.Targets, LoRATargets[k]) })
	if err != nil {
		return nil, err
	}
	l.seed = uint64(seed)
	for i, p := range l.params {
		if !strings.HasSuffix(p.Name, "lora_A.weight") {
			continue
		}
		r := rand.New(rand.NewPCG(uint64(seed), uint64(i)+0x2545f4914f6cdd1d))
		bound := 1 / math.Sqrt(float64(p.Shape[1]))
		v := make([]float32, p.N)
		for j := range v {
			v[j] = float32((2*r.Float64() - 1) * bound)
		}
		m.be.Upload(p.w, v)
	}
	m.attach(l)
	return l, nil
}

// SetDropout changes the dropout probability (an adapter read from disk
// keeps its config's; tests and evaluation turn it off).
func (l *LoRA) SetDropout(p float64) error {
	c := l.cfg
	c.Dropout = p
	if err := c.Validate(); err != nil {
		return err
	}
	if p > 0 && l.cfg.Dropout == 0 {
		l.capN = 0 // re-make the step buffers with masks
	}
	l.cfg = c
	return nil
}

// SetDropoutSeed sets the seed of the dropout masks.
func (l *LoRA) SetDropoutSeed(seed int64) { l.seed = uint64(seed) }

func (m *Model) attach(l *LoRA) {
	m.DetachLoRA()
	m.lora = l
}

// DetachLoRA removes the attached adapter (freeing its buffers); the base
// is trainable again.
func (m *Model) DetachLoRA() {
	l := m.lora
	if l == nil {
		return
	}
	m.lora = nil
	for _, b := range []backend.Buffer{l.w, l.g, l.du, l.xd, l.tmp, l.norm} {
		if !b.IsNil() {
			m.be.Free(b)
		}
	}
	for _, ms := range l.mods {
		for _, md := range ms {
			if md != nil {
				for _, b := range []backend.Buffer{md.uBack, md.mBak} {
					if !b.IsNil() {
						m.be.Free(b)
					}
				}
			}
		}
	}
}

// ZeroGrad zeroes the adapter's gradients.
func (l *LoRA) ZeroGrad() { l.be.Zero(l.g) }

// ensure sizes the adapter's step buffers for N positions.
func (l *LoRA) ensure(be backend.Backend, N int, maxIn, D int) error {
	if N <= l.capN {
		l.setN(N)
		return nil
	}
	var err error
	f := func(b *backend.Buffer, n int) {
		if err != nil {
			return
		}
		if !b.IsNil() {
			be.Free(*b)
		}
		*b, err = be.Alloc(backend.F32, n)
	}
	drop := l.cfg.Dropout > 0
	for _, ms := range l.mods {
		for _, md := range ms {
			if md == nil {
				continue
			}
			f(&md.uBack, N*l.cfg.R)
			if drop {
				f(&md.mBak, N*md.in)
			}
		}
	}
	f(&l.du, N*l.cfg.R)
	f(&l.tmp, N*maxIn)
	if drop {
		f(&l.xd, N*maxIn)
	}
	if l.norm.IsNil() {
		f(&l.norm, D)
	}
	if err != nil {
		l.capN = 0
		return fmt.Errorf("llama: allocating LoRA buffers for %d positions: %w", N, err)
	}
	l.capN = N
	l.setN(N)
	return nil
}

func (l *LoRA) setN(N int) {
	l.n = N
	for _, ms := range l.mods {
		for _, md := range ms {
			if md == nil {
				continue
			}
			md.u = md.uBack.Slice(0, N*l.cfg.R)
			if !md.mBak.IsNil() {
				md.mask = md.mBak.Slice(0, N*md.in)
			}
		}
	}
}

// loraFwd adds layer l's adapter of kind to y [N, out] given its input x
// [N, in]; with train and dropout it draws and keeps the dropout mask.
func (m *Model) loraFwd(l, kind int, x, y backend.Buffer, N int, train bool) {
	lr := m.lora
	if lr == nil {
		return
	}
	md := lr.mods[l][kind]
	if md == nil {
		return
	}
	be, r := m.be, lr.cfg.R
	xin := x
	if train && lr.cfg.Dropout > 0 {
		lr.drawMask(md, N)
		be.Upload(md.mask, lr.maskHost)
		xin = lr.xd.Slice(0, N*md.in)
		be.Mul(xin, x, md.mask)
	}
	be.MatMul(false, true, N, r, md.in, 1, xin, md.in, md.a.w, md.in, 0, md.u, r)
	be.MatMul(false, true, N, md.out, r, lr.scale, md.u, r, md.b.w, r, 1, y, md.out)
}

// drawMask fills maskHost with an inverted-dropout mask (0 or 1/(1−p)) for
// md's input of N rows.
func (lr *LoRA) drawMask(md *loraMod, N int) {
	n := N * md.in
	if cap(lr.maskHost) < n {
		lr.maskHost = make([]float32, n)
	}
	lr.maskHost = lr.maskHost[:n]
	keep := float32(1 / (1 - lr.cfg.Dropout))
	// element dropped when its 32-bit uniform lane is below p·2³²
	thr := uint64(lr.cfg.Dropout * (1 << 32))
	r := rand.NewPCG(lr.seed^0x9e3779b97f4a7c15, lr.DropoutCalls<<16|uint64(md.layer)<<3|uint64(md.kind))
	mh := lr.maskHost
	for i := 0; i < len(mh); i += 2 {
		u := r.Uint64()
		for j, lane := range [2]uint64{u & 0xffffffff, u >> 32} {
			if i+j < len(mh) {
				if lane < thr {
					mh[i+j] = 0
				} else {
					mh[i+j] = keep
				}
			}
		}
	}
}

// loraBwd accumulates the gradients of layer l's adapter of kind given the
// output gradient dy [N, out] and the input x [N, in], and adds the
// adapter's input gradient to dx [N, in].
func (m *Model) loraBwd(l, kind int, x, dy, dx backend.Buffer, N int) {
	lr := m.lora
	md := lr.mods[l][kind]
	if md == nil {
		return
	}
	be, r, s := m.be, lr.cfg.R, lr.scale
	in, out := md.in, md.out
	du := lr.du.Slice(0, N*r)
	be.MatMul(true, false, out, r, N, s, dy, out, md.u, r, 1, md.b.g, r)
	be.MatMul(false, false, N, r, out, s, dy, out, md.b.w, r, 0, du, r)
	drop := lr.cfg.Dropout > 0
	xin := x
	if drop {
		xin = lr.xd.Slice(0, N*in)
		be.Mul(xin, x, md.mask)
	}
	be.MatMul(true, false, r, in, N, 1, du, r, xin, in, 1, md.a.g, in)
	if !drop {
		be.MatMul(false, false, N, in, r, 1, du, r, md.a.w, in, 1, dx, in)
		return
	}
	tmp := lr.tmp.Slice(0, N*in)
	be.MatMul(false, false, N, in, r, 1, du, r, md.a.w, in, 0, tmp, in)
	be.Mul(tmp, tmp, md.mask)
	be.Add(dx, tmp)
}

// base returns the base parameter of layer l's target kind.
func (ly *layer) target(kind int) *Param {
	return [...]*Param{ly.q, ly.k, ly.v, ly.o, ly.gate, ly.up, ly.down}[kind]
}

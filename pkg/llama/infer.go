package llama

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// The forward-only inference path: the same model definition and backend
// ops as training, with a per-sequence key/value cache (GQA-aware: it
// holds NumKeyValueHeads heads per position) instead of the activations
// kept for backward.

// OpenOptions says how Open loads a model directory for inference.
type OpenOptions struct {
	Device  string // backend name from the registry: "cpu" (default "")
	Threads int    // 0 = GOMAXPROCS
	// DType "" keeps the file's dtype (f32/bf16/f16 weights stay as
	// stored, memory-mapped where possible, converted to f32 on the fly
	// inside the matmul); "float32" converts.
	DType string
	// Adapter, when set, is a PEFT LoRA adapter directory
	// (adapter_config.json + adapter_model.safetensors) applied at load:
	// each targeted matrix becomes W + (α/r)·B·A in fp32 (a bf16/f16
	// matrix is widened to an fp32 copy first; the others stay as stored).
	Adapter string
}

// Open loads config.json + safetensors (single or sharded) from dir for
// inference: no gradients, no optimizer state. 2-D weights stored as BF16
// or F16 stay so (on the CPU backend the buffers are the memory-mapped file
// itself, so a 7B bf16 model needs about 13.5 GB); norms become fp32. Call
// Close to unmap.
func Open(dir string, opt OpenOptions) (*Model, error) {
	keep := true
	switch strings.ToLower(opt.DType) {
	case "":
	case "float32", "f32", "fp32":
		keep = false
	default:
		return nil, fmt.Errorf("llama: open dtype %q: want \"\" (as stored) or float32", opt.DType)
	}
	var be backend.Backend
	var err error
	if (opt.Device == "" || opt.Device == "cpu") && opt.Threads == 0 {
		be, err = DefaultBackend()
	} else {
		dev := opt.Device
		if dev == "" {
			dev = "cpu"
		}
		be, err = backend.Open(dev, backend.Options{Threads: opt.Threads})
	}
	if err != nil {
		return nil, err
	}
	return openOn(dir, be, keep, opt.Adapter)
}

// OpenOn is Open on the backend be with weights kept as stored (no
// adapter): the frozen base of LoRA training.
func OpenOn(dir string, be backend.Backend) (*Model, error) {
	return openOn(dir, be, true, "")
}

func openOn(dir string, be backend.Backend, keep bool, adapter string) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, checkpointHint(dir, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, be: be}
	m.makeParams()
	mapped := false
	ok := false
	defer func() {
		if !ok || !mapped {
			st.Close()
		}
	}()
	if err := m.checkTensors(dir, st); err != nil {
		return nil, err
	}
	hm, canMap := be.(backend.HostMapper)
	for _, p := range m.params {
		info, _ := st.Info(p.Name)
		var dt backend.DType
		switch {
		case info.DType == safetensors.F32:
			dt = backend.F32
		case keep && len(p.Shape) == 2 && info.DType == safetensors.BF16:
			dt = backend.BF16
		case keep && len(p.Shape) == 2 && info.DType == safetensors.F16:
			dt = backend.F16
		}
		if dt != 0 {
			raw, err := st.Bytes(p.Name)
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %q: %w", dir, p.Name, err)
			}
			if len(raw) != p.N*dt.Size() {
				return nil, fmt.Errorf("%s: tensor %q holds %d bytes, its shape %v needs %d", dir, p.Name, len(raw), p.Shape, p.N*dt.Size())
			}
			if canMap {
				if b, ok := hm.WrapHost(dt, raw); ok {
					p.w, mapped = b, true
					continue
				}
			}
			b, err := be.Alloc(dt, p.N)
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %q: %w", dir, p.Name, err)
			}
			be.UploadRaw(b, raw)
			p.w = b
			continue
		}
		v, err := st.Float32(p.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", dir, p.Name, err)
		}
		if len(v) != p.N {
			return nil, fmt.Errorf("%s: tensor %q holds %d values, its shape %v needs %d", dir, p.Name, len(v), p.Shape, p.N)
		}
		b, err := be.Alloc(backend.F32, p.N)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", dir, p.Name, err)
		}
		be.Upload(b, v)
		p.w = b
	}
	if mapped {
		m.closer = st
	}
	if tp := filepath.Join(dir, TokenizerFile); fileExists(tp) {
		m.TokenizerPath = tp
	}
	if adapter != "" {
		if _, err := m.LoadAdapter(adapter); err != nil {
			return nil, err
		}
		if err := m.MergeLoRA(); err != nil {
			return nil, err
		}
	}
	ok = true
	return m, nil
}

// KVCache holds the keys and values of one sequence for every layer (GQA:
// NumKeyValueHeads heads), in backend buffers of Cap positions.
type KVCache struct {
	m      *Model
	n, cap int
	k, v   []backend.Buffer // per layer [cap, NumKeyValueHeads*HeadDim]
}

// NewKVCache makes an empty cache for up to maxLen positions (at most
// MaxPositionEmbeddings).
func (m *Model) NewKVCache(maxLen int) (*KVCache, error) {
	if maxLen <= 0 {
		return nil, fmt.Errorf("llama: KV cache length %d must be positive", maxLen)
	}
	if maxLen > m.Config.MaxPositionEmbeddings {
		return nil, fmt.Errorf("llama: KV cache length %d exceeds max_position_embeddings %d", maxLen, m.Config.MaxPositionEmbeddings)
	}
	Dkv := m.Config.NumKeyValueHeads * m.Config.HeadDim()
	c := &KVCache{m: m, cap: maxLen}
	for l := 0; l < m.Config.NumHiddenLayers; l++ {
		k, err := m.be.Alloc(backend.F32, maxLen*Dkv)
		if err != nil {
			c.Release()
			return nil, fmt.Errorf("llama: KV cache of %d positions: %w", maxLen, err)
		}
		c.k = append(c.k, k)
		v, err := m.be.Alloc(backend.F32, maxLen*Dkv)
		if err != nil {
			c.Release()
			return nil, fmt.Errorf("llama: KV cache of %d positions: %w", maxLen, err)
		}
		c.v = append(c.v, v)
	}
	return c, nil
}

// Len is the number of positions stored.
func (c *KVCache) Len() int { return c.n }

// Cap is the number of positions the cache can hold.
func (c *KVCache) Cap() int { return c.cap }

// Truncate keeps the first n positions (0 = reset).
func (c *KVCache) Truncate(n int) {
	if n < 0 {
		n = 0
	}
	if n < c.n {
		c.n = n
	}
}

// Release frees the cache's buffers; the cache must not be used afterwards.
func (c *KVCache) Release() {
	for _, b := range append(c.k, c.v...) {
		c.m.be.Free(b)
	}
	c.k, c.v, c.n, c.cap = nil, nil, 0, 0
}

// inferBufs are the scratch buffers of Feed and FeedBatch (rows positions).
type inferBufs struct {
	rows                                      int
	x, xn, q, k, v, att, h, hn, gate, up, act backend.Buffer
	rstd, tokens, pos                         backend.Buffer
	lse, seg                                  backend.Buffer // prefill of an empty cache
	logits                                    backend.Buffer // grown separately
	pos32                                     []int32
	host                                      []float32
}

func (m *Model) releaseInfer() {
	b := &m.inf
	for _, x := range []backend.Buffer{b.x, b.xn, b.q, b.k, b.v, b.att, b.h, b.hn, b.gate, b.up, b.act, b.rstd, b.tokens, b.pos, b.logits, b.lse, b.seg} {
		if !x.IsNil() {
			m.be.Free(x)
		}
	}
	m.inf = inferBufs{}
}

func (m *Model) ensureInfer(rows int) error {
	if rows <= m.inf.rows {
		return nil
	}
	logits, host := m.inf.logits, m.inf.host
	m.inf.logits = backend.Buffer{}
	m.releaseInfer()
	m.inf.logits, m.inf.host = logits, host
	c := m.Config
	D, I := c.HiddenSize, c.IntermediateSize
	Dkv := c.NumKeyValueHeads * c.HeadDim()
	var err error
	f := func(dt backend.DType, n int) backend.Buffer {
		if err != nil {
			return backend.Buffer{}
		}
		var b backend.Buffer
		b, err = m.be.Alloc(dt, n)
		return b
	}
	b := &m.inf
	b.x, b.xn, b.q, b.att, b.h, b.hn = f(backend.F32, rows*D), f(backend.F32, rows*D), f(backend.F32, rows*D), f(backend.F32, rows*D), f(backend.F32, rows*D), f(backend.F32, rows*D)
	b.k, b.v = f(backend.F32, rows*Dkv), f(backend.F32, rows*Dkv)
	b.gate, b.up, b.act = f(backend.F32, rows*I), f(backend.F32, rows*I), f(backend.F32, rows*I)
	b.rstd, b.tokens, b.pos = f(backend.F32, rows), f(backend.I32, rows), f(backend.I32, rows)
	b.lse, b.seg = f(backend.F32, rows*c.NumAttentionHeads), f(backend.I32, rows) // seg stays all zero
	if err != nil {
		m.releaseInfer()
		return fmt.Errorf("llama: inference buffers for %d positions: %w", rows, err)
	}
	b.rows = rows
	return nil
}

func (m *Model) checkIDs(tokens []int32) error {
	V := int32(m.Config.VocabSize)
	for i, t := range tokens {
		if t < 0 || t >= V {
			return fmt.Errorf("llama: token %d: id %d outside the vocabulary [0,%d)", i, t, V)
		}
	}
	return nil
}

// Feed appends tokens to the sequence at positions c.Len().. (prefill goes
// through the GEMM; into an empty cache, attention too, as in training)
// and returns the logits of the last fed position (len
// VocabSize). The slice is valid until the next call on m. Error when c
// would overflow its Cap or an id is outside the vocabulary.
func (m *Model) Feed(c *KVCache, tokens []int32) ([]float32, error) {
	n := len(tokens)
	switch {
	case c == nil || c.m != m:
		return nil, fmt.Errorf("llama: Feed with a KV cache of another model")
	case n == 0:
		return nil, fmt.Errorf("llama: Feed of no tokens")
	case c.n+n > c.cap:
		return nil, fmt.Errorf("llama: KV cache overflow: %d positions + %d tokens > capacity %d", c.n, n, c.cap)
	}
	if err := m.checkIDs(tokens); err != nil {
		return nil, err
	}
	if err := m.ensureInfer(n); err != nil {
		return nil, err
	}
	if err := m.rope(c.n + n); err != nil {
		return nil, err
	}
	b := &m.inf
	b.pos32 = b.pos32[:0]
	for i := 0; i < n; i++ {
		b.pos32 = append(b.pos32, int32(c.n+i))
	}
	cfg := m.Config
	D, V := cfg.HiddenSize, cfg.VocabSize
	Dkv := cfg.NumKeyValueHeads * cfg.HeadDim()
	tok, pos := b.tokens.Slice(0, n), b.pos.Slice(0, n)
	m.be.UploadInt32(tok, tokens)
	m.be.UploadInt32(pos, b.pos32)
	kv := func(l int) (backend.Buffer, backend.Buffer, backend.Buffer, backend.Buffer) {
		return c.k[l].Slice(c.n*Dkv, (c.n+n)*Dkv), c.v[l].Slice(c.n*Dkv, (c.n+n)*Dkv), c.k[l], c.v[l]
	}
	x := m.decode(n, tok, pos, kv, func(l int, q, att backend.Buffer) {
		if c.n == 0 && n > 1 {
			// a fresh sequence: training's causal attention (the GEMM path)
			shape := backend.AttnShape{B: 1, T: n, NH: cfg.NumAttentionHeads, NKV: cfg.NumKeyValueHeads, HD: cfg.HeadDim()}
			m.be.Attention(att, b.lse.Slice(0, n*cfg.NumAttentionHeads), q, c.k[l].Slice(0, n*Dkv), c.v[l].Slice(0, n*Dkv), b.seg.Slice(0, n), shape)
			return
		}
		m.be.AttentionCached(att, q, c.k[l], c.v[l], c.n, n, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim())
	})
	// logits of the last position only
	last := x.Slice((n-1)*D, n*D)
	xn := b.xn.Slice(0, D)
	m.be.RMSNorm(xn, b.rstd.Slice(0, 1), last, m.norm.w, 1, D, float32(cfg.RMSNormEps))
	out, err := m.inferLogits(xn, 1)
	if err != nil {
		return nil, err
	}
	c.n += n
	return out[:V], nil
}

// FeedBatch runs one decoding step for several sequences together:
// tokens[i] is appended to caches[i] (each at its own position); it
// returns logits [len(caches)*VocabSize] (valid until the next call on m).
// The projections and the MLP run as one batched GEMM over the sequences;
// attention runs per sequence against its own cache.
func (m *Model) FeedBatch(caches []*KVCache, tokens []int32) ([]float32, error) {
	B := len(caches)
	if B == 0 || len(tokens) != B {
		return nil, fmt.Errorf("llama: FeedBatch of %d caches and %d tokens", B, len(tokens))
	}
	seen := make(map[*KVCache]bool, B)
	for i, c := range caches {
		switch {
		case c == nil || c.m != m:
			return nil, fmt.Errorf("llama: FeedBatch: cache %d belongs to another model", i)
		case seen[c]:
			return nil, fmt.Errorf("llama: FeedBatch: cache %d appears twice", i)
		case c.n+1 > c.cap:
			return nil, fmt.Errorf("llama: FeedBatch: cache %d is full (%d positions)", i, c.cap)
		}
		seen[c] = true
	}
	if err := m.checkIDs(tokens); err != nil {
		return nil, err
	}
	if err := m.ensureInfer(B); err != nil {
		return nil, err
	}
	b := &m.inf
	b.pos32 = b.pos32[:0]
	maxPos := 0
	for _, c := range caches {
		b.pos32 = append(b.pos32, int32(c.n))
		maxPos = max(maxPos, c.n)
	}
	if err := m.rope(maxPos + 1); err != nil {
		return nil, err
	}
	cfg := m.Config
	D := cfg.HiddenSize
	NH, NKV, HD := cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim()
	Dkv := NKV * HD
	tok, pos := b.tokens.Slice(0, B), b.pos.Slice(0, B)
	m.be.UploadInt32(tok, tokens)
	m.be.UploadInt32(pos, b.pos32)
	kscr, vscr := b.k.Slice(0, B*Dkv), b.v.Slice(0, B*Dkv)
	kv := func(int) (backend.Buffer, backend.Buffer, backend.Buffer, backend.Buffer) {
		return kscr, vscr, backend.Buffer{}, backend.Buffer{}
	}
	x := m.decode(B, tok, pos, kv, func(l int, q, att backend.Buffer) {
		for i, c := range caches {
			row := func(s backend.Buffer, w int) backend.Buffer { return s.Slice(i*w, (i+1)*w) }
			m.be.Copy(c.k[l].Slice(c.n*Dkv, (c.n+1)*Dkv), row(kscr, Dkv))
			m.be.Copy(c.v[l].Slice(c.n*Dkv, (c.n+1)*Dkv), row(vscr, Dkv))
			m.be.AttentionCached(row(att, D), row(q, D), c.k[l], c.v[l], c.n, 1, NH, NKV, HD)
		}
	})
	xn := b.xn.Slice(0, B*D)
	m.be.RMSNorm(xn, b.rstd.Slice(0, B), x, m.norm.w, B, D, float32(cfg.RMSNormEps))
	out, err := m.inferLogits(xn, B)
	if err != nil {
		return nil, err
	}
	for _, c := range caches {
		c.n++
	}
	return out, nil
}

// decode runs the decoder layers over n new rows (tokens and positions
// uploaded): kv(l) gives where the layer's new keys and values go; attend
// runs the attention of the layer given q and the output buffer. It
// returns the residual stream after the last layer (n×D).
func (m *Model) decode(n int, tok, pos backend.Buffer, kv func(l int) (k, v, _, _ backend.Buffer), attend func(l int, q, att backend.Buffer)) backend.Buffer {
	cfg := m.Config
	be := m.be
	D, I := cfg.HiddenSize, cfg.IntermediateSize
	NH, NKV, HD := cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim()
	Dkv := NKV * HD
	eps := float32(cfg.RMSNormEps)
	b := &m.inf
	x, xn, q, att := b.x.Slice(0, n*D), b.xn.Slice(0, n*D), b.q.Slice(0, n*D), b.att.Slice(0, n*D)
	h, hn := b.h.Slice(0, n*D), b.hn.Slice(0, n*D)
	gate, up, act := b.gate.Slice(0, n*I), b.up.Slice(0, n*I), b.act.Slice(0, n*I)
	rstd := b.rstd.Slice(0, n)
	be.Embedding(x, m.embed.w, tok, D)
	for l, ly := range m.layers {
		k, v, _, _ := kv(l)
		be.RMSNorm(xn, rstd, x, ly.inNorm.w, n, D, eps)
		be.MatMul(false, true, n, D, D, 1, xn, D, ly.q.w, D, 0, q, D)
		be.MatMul(false, true, n, Dkv, D, 1, xn, D, ly.k.w, D, 0, k, Dkv)
		be.MatMul(false, true, n, Dkv, D, 1, xn, D, ly.v.w, D, 0, v, Dkv)
		be.RoPE(q, pos, n, NH, HD, m.ropeCos, m.ropeSin, false)
		be.RoPE(k, pos, n, NKV, HD, m.ropeCos, m.ropeSin, false)
		attend(l, q, att)
		be.Copy(h, x)
		be.MatMul(false, true, n, D, D, 1, att, D, ly.o.w, D, 1, h, D)
		be.RMSNorm(hn, rstd, h, ly.postNorm.w, n, D, eps)
		be.MatMul(false, true, n, I, D, 1, hn, D, ly.gate.w, D, 0, gate, I)
		be.MatMul(false, true, n, I, D, 1, hn, D, ly.up.w, D, 0, up, I)
		be.SwiGLU(act, gate, up)
		be.Copy(x, h)
		be.MatMul(false, true, n, D, I, 1, act, I, ly.down.w, I, 1, x, D)
	}
	return x
}

// inferLogits computes rows×V logits of xn through lm_head and downloads
// them into the reused host slice.
func (m *Model) inferLogits(xn backend.Buffer, rows int) ([]float32, error) {
	D, V := m.Config.HiddenSize, m.Config.VocabSize
	lb, err := m.grow(&m.inf.logits, backend.F32, rows*V)
	if err != nil {
		return nil, err
	}
	m.be.MatMul(false, true, rows, V, D, 1, xn, D, m.lmHead.w, D, 0, lb, V)
	if cap(m.inf.host) < rows*V {
		m.inf.host = make([]float32, rows*V)
	}
	out := m.inf.host[:rows*V]
	m.be.Download(out, lb)
	return out, nil
}

// Package llama is the LLaMA architecture of Hugging Face's
// LlamaForCausalLM in fp32: config.json, HF tensor names, HF-like random
// init, forward and a hand-written backward pass, and loading/saving model
// directories (config.json + safetensors + tokenizer.model).
package llama

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Config is the part of Hugging Face's LlamaConfig the model uses; JSON
// tags are HF's field names. The other fields of a loaded config.json
// (bos_token_id, architectures, ...) are kept in Extra and written back.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	VocabSize             int     `json:"vocab_size"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	RopeTheta             float64 `json:"rope_theta"`
	InitializerRange      float64 `json:"initializer_range"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	TorchDtype            string  `json:"torch_dtype"`

	// Extra holds the config.json fields not listed above, verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// knownKeys are the fields Config decodes itself.
var knownKeys = map[string]bool{
	"hidden_size": true, "intermediate_size": true, "num_hidden_layers": true,
	"num_attention_heads": true, "num_key_value_heads": true, "vocab_size": true,
	"max_position_embeddings": true, "rms_norm_eps": true, "rope_theta": true,
	"initializer_range": true, "tie_word_embeddings": true, "torch_dtype": true,
}

// DefaultConfig is LlamaConfig's defaults (LLaMA-7B shapes).
func DefaultConfig() Config {
	return Config{
		HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32,
		NumAttentionHeads: 32, VocabSize: 32000, MaxPositionEmbeddings: 2048,
		RMSNormEps: 1e-6, RopeTheta: 10000, InitializerRange: 0.02, TorchDtype: "float32",
	}
}

// Preset returns a named small configuration: "tiny" (a few hundred
// thousand parameters, for tests and demos) or "small" (~20M parameters,
// for benchmarks). vocab is the tokenizer's vocabulary size (0: 32000).
func Preset(name string, vocab int) (Config, error) {
	if vocab <= 0 {
		vocab = 32000
	}
	c := DefaultConfig()
	c.VocabSize = vocab
	c.Extra = map[string]json.RawMessage{"bos_token_id": json.RawMessage("1"), "eos_token_id": json.RawMessage("2")}
	switch name {
	case "tiny":
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 64, 172, 2
		c.NumAttentionHeads, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 4, 4, 512
	case "small":
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 256, 688, 4
		c.NumAttentionHeads, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 8, 8, 1024
	default:
		return Config{}, fmt.Errorf("unknown preset %q (want tiny or small)", name)
	}
	return c, nil
}

// HeadDim is HiddenSize / NumAttentionHeads.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// LoadConfig reads a Hugging Face config.json.
func LoadConfig(path string) (Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Config{}, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxConfigBytes {
		return Config{}, fmt.Errorf("%s: not a regular file of at most %d bytes", path, maxConfigBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// maxConfigBytes bounds config.json (real ones are about 1 KB).
const maxConfigBytes = 1 << 20

// ParseConfig decodes config.json bytes, filling LlamaConfig's defaults for
// absent fields (num_key_value_heads defaults to num_attention_heads), and
// validates the result.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	c.TorchDtype = ""
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return Config{}, fmt.Errorf("config.json: %v", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("config.json: %v", err)
	}
	if raw, ok := all["num_key_value_heads"]; !ok || string(raw) == "null" {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	for k, v := range all {
		if !knownKeys[k] {
			if c.Extra == nil {
				c.Extra = map[string]json.RawMessage{}
			}
			c.Extra[k] = v
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c Config) extraString(key string) (string, bool) {
	raw, ok := c.Extra[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// PadTokenID returns pad_token_id when config.json sets it to an integer.
func (c Config) PadTokenID() (int, bool) {
	raw, ok := c.Extra["pad_token_id"]
	if !ok {
		return 0, false
	}
	var id int
	if json.Unmarshal(raw, &id) != nil {
		return 0, false
	}
	return id, true
}

// Validate checks that the configuration describes a model this package
// implements, with consistent shapes.
func (c Config) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"vocab_size", c.VocabSize},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("config: %s must be positive, got %d", p.name, p.v)
		}
	}
	// Sane limits, checked before anything is allocated from these
	// numbers (config.json is untrusted input; see docs/security.md).
	lim := []struct {
		name   string
		v, max int
	}{
		{"hidden_size", c.HiddenSize, MaxHiddenSize}, {"intermediate_size", c.IntermediateSize, MaxIntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers, MaxLayers}, {"num_attention_heads", c.NumAttentionHeads, MaxHeads},
		{"num_key_value_heads", c.NumKeyValueHeads, MaxHeads}, {"vocab_size", c.VocabSize, MaxVocab},
		{"max_position_embeddings", c.MaxPositionEmbeddings, MaxPositions},
	}
	for _, l := range lim {
		if l.v > l.max {
			return fmt.Errorf("config: %s %d is above the limit %d", l.name, l.v, l.max)
		}
	}
	if n := c.NumParams(); n > MaxParams {
		return fmt.Errorf("config: %d parameters is above the limit %d", n, int64(MaxParams))
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.HeadDim()%2 != 0 {
		return fmt.Errorf("config: head dim %d must be even for RoPE", c.HeadDim())
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return fmt.Errorf("config: num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) || !(c.InitializerRange >= 0) {
		return fmt.Errorf("config: rms_norm_eps and rope_theta must be positive and initializer_range non-negative")
	}
	switch c.TorchDtype {
	case "", "float32", "float16", "bfloat16":
	default:
		return fmt.Errorf("config: torch_dtype %q not supported (float32, float16, bfloat16)", c.TorchDtype)
	}
	if s, ok := c.extraString("model_type"); ok && s != "llama" {
		return fmt.Errorf("config: model_type %q is not llama", s)
	}
	if s, ok := c.extraString("hidden_act"); ok && s != "silu" {
		return fmt.Errorf("config: hidden_act %q not supported (silu only)", s)
	}
	if raw, ok := c.Extra["rope_scaling"]; ok && string(bytes.TrimSpace(raw)) != "null" {
		return fmt.Errorf("config: rope_scaling is not supported")
	}
	for _, k := range []string{"attention_bias", "mlp_bias"} {
		if raw, ok := c.Extra[k]; ok && string(bytes.TrimSpace(raw)) == "true" {
			return fmt.Errorf("config: %s=true is not supported", k)
		}
	}
	if raw, ok := c.Extra["head_dim"]; ok {
		var hd int
		if json.Unmarshal(raw, &hd) == nil && hd != c.HeadDim() {
			return fmt.Errorf("config: head_dim %d != hidden_size/num_attention_heads %d", hd, c.HeadDim())
		}
	}
	return nil
}

// Limits on a configuration: well above every LLaMA (65B: hidden 8192,
// 80 layers, intermediate 22016, 64 heads, vocab 32000; LLaMA-3: vocab
// 128256, 128k positions), low enough that no number in a hostile
// config.json makes the model's size overflow or run away.
const (
	MaxHiddenSize       = 1 << 16
	MaxIntermediateSize = 1 << 18
	MaxLayers           = 1 << 10
	MaxHeads            = 1 << 10
	MaxVocab            = 1 << 22
	MaxPositions        = 1 << 21
	MaxParams           = 1 << 37 // 137 billion
)

// Tensor is the name and shape of one parameter tensor.
type Tensor struct {
	Name  string
	Shape []int
}

// Tensors lists the model's parameter tensors (HF names and shapes, in
// the order of Model.Params) without allocating them, so that a model
// directory's header can be checked against the config first. c must have
// passed Validate's positivity and limit checks.
func (c Config) Tensors() []Tensor {
	D, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	Dkv := c.NumKeyValueHeads * c.HeadDim()
	ts := []Tensor{{"model.embed_tokens.weight", []int{V, D}}}
	for l := 0; l < c.NumHiddenLayers; l++ {
		pre := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			Tensor{pre + "self_attn.q_proj.weight", []int{D, D}},
			Tensor{pre + "self_attn.k_proj.weight", []int{Dkv, D}},
			Tensor{pre + "self_attn.v_proj.weight", []int{Dkv, D}},
			Tensor{pre + "self_attn.o_proj.weight", []int{D, D}},
			Tensor{pre + "mlp.gate_proj.weight", []int{I, D}},
			Tensor{pre + "mlp.up_proj.weight", []int{I, D}},
			Tensor{pre + "mlp.down_proj.weight", []int{D, I}},
			Tensor{pre + "input_layernorm.weight", []int{D}},
			Tensor{pre + "post_attention_layernorm.weight", []int{D}})
	}
	ts = append(ts, Tensor{"model.norm.weight", []int{D}})
	if !c.TieWordEmbeddings {
		ts = append(ts, Tensor{"lm_head.weight", []int{V, D}})
	}
	return ts
}

// NumParams is the number of weights the configuration implies, computed
// in int64 from the (limited) dimensions, without allocating anything.
// Non-positive dimensions count as zero.
func (c Config) NumParams() int64 {
	D, I, V, L := int64(max(c.HiddenSize, 0)), int64(max(c.IntermediateSize, 0)), int64(max(c.VocabSize, 0)), int64(max(c.NumHiddenLayers, 0))
	var Dkv int64
	if c.NumAttentionHeads > 0 {
		Dkv = int64(max(c.NumKeyValueHeads, 0)) * D / int64(c.NumAttentionHeads)
	}
	// The limits keep every product below 2^63: D, Dkv <= 2^16,
	// I <= 2^18, V <= 2^22, L <= 2^10 (unlimited values come here only
	// from callers that skipped Validate; they are clamped).
	clamp := func(x, m int64) int64 { return min(x, m) }
	D, I, V, L, Dkv = clamp(D, 1<<20), clamp(I, 1<<20), clamp(V, 1<<24), clamp(L, 1<<12), clamp(Dkv, 1<<20)
	layer := 2*D*D + 2*Dkv*D + 3*I*D + 2*D
	n := V*D + L*layer + D
	if !c.TieWordEmbeddings {
		n += V * D
	}
	return n
}

// MemoryBytes is what a model of this configuration takes in fp32: the
// weights, and as much again for the gradients when grads is set.
func (c Config) MemoryBytes(grads bool) int64 {
	b := 4 * c.NumParams()
	if grads {
		b *= 2
	}
	return b
}

// CheckMemory refuses a configuration whose fp32 weights (and gradients)
// would not fit in the machine's memory, with a message instead of an
// out-of-memory crash. Where the total memory cannot be read it checks
// nothing more than Validate.
func (c Config) CheckMemory(grads bool) error {
	need := c.MemoryBytes(grads)
	total := memTotal()
	if total > 0 && need > total {
		what := "weights"
		if grads {
			what = "weights and gradients"
		}
		return fmt.Errorf("config: %d parameters need %.1f GiB of fp32 %s; this machine has %.1f GiB",
			c.NumParams(), float64(need)/(1<<30), what, float64(total)/(1<<30))
	}
	return nil
}

// memTotal is MemTotal of /proc/meminfo in bytes (0 when unknown).
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}

// MarshalJSON writes the config as HF does: one object, keys sorted,
// including Extra, model_type, architectures and hidden_act.
func (c Config) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range c.Extra {
		m[k] = v
	}
	type plain Config
	b, err := json.Marshal(plain(c))
	if err != nil {
		return nil, err
	}
	var known map[string]json.RawMessage
	if err := json.Unmarshal(b, &known); err != nil {
		return nil, err
	}
	for k, v := range known {
		m[k] = v
	}
	if _, ok := m["model_type"]; !ok {
		m["model_type"] = "llama"
	}
	if _, ok := m["architectures"]; !ok {
		m["architectures"] = []string{"LlamaForCausalLM"}
	}
	if _, ok := m["hidden_act"]; !ok {
		m["hidden_act"] = "silu"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, k := range keys {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(m[k])
		if err != nil {
			return nil, err
		}
		buf.WriteString("  ")
		buf.Write(kb)
		buf.WriteString(": ")
		buf.Write(vb)
		if i < len(keys)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("}")
	return buf.Bytes(), nil
}

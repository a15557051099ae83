package gguf

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const exportSummary = `Writes a model directory (config.json, safetensors single or sharded,
tokenizer.model) as a GGUF v3 file that llama.cpp and Ollama load: the
llama architecture keys, the SentencePiece vocabulary with scores and token
types, llama.cpp's tensor names, and q_proj/k_proj rows permuted to the
interleaved rotary layout llama.cpp computes with. --type f32 keeps fp32,
f16 stores 2-D weights as IEEE half (norms stay f32), q8_0 stores 2-D
weights as blocks of 32 int8 with an fp16 scale (rows that are not a
multiple of 32 fall back to f16). The file is written under a temporary
name and renamed.`

const exportExample = `trainer export --format gguf --type f16 --model tuned -o tuned.gguf
llama-cli -m tuned.gguf -p "### Instruction: ..."     # or: ollama create tuned -f Modelfile`

// ExportMain runs `trainer export`.
func ExportMain(args []string, stdout, stderr io.Writer) int {
	c := cli.NewCommand("trainer export", "--model DIR -o FILE.gguf [flags]", exportSummary, exportExample)
	fs := c.Flags
	var o ExportOptions
	var out, format string
	fs.StringVar(&o.Model, "model", "", "model `DIR` (config.json, safetensors, tokenizer.model)")
	fs.StringVar(&out, "output", "", "write the GGUF file to `FILE` (- for stdout)")
	c.Alias("o", "output")
	fs.StringVar(&format, "format", "gguf", "output `FORMAT` (gguf)")
	fs.StringVar(&o.Type, "type", "f16", "weight `TYPE`: f32, f16 or q8_0")
	fs.StringVar(&o.Name, "name", "", "general.name `NAME` in the file (default: the directory's name)")
	quiet := fs.Bool("quiet", false, "no summary on stderr")
	err := func() error {
		if _, err := c.Parse(args); err != nil {
			return err
		}
		if o.Model == "" {
			return cli.Usagef("--model is required")
		}
		if out == "" {
			return cli.Usagef("-o FILE.gguf is required")
		}
		if format != "gguf" {
			return cli.Usagef("--format %q: only gguf is supported", format)
		}
		if _, err := ParseType(o.Type); err != nil {
			return cli.Usagef("--type: %v", err)
		}
		w, err := xio.CreateTo(out, false, stdout)
		if err != nil {
			return err
		}
		st, err := Export(w, o)
		if err == nil {
			err = w.Commit()
		} else {
			w.Abort()
		}
		if err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintf(stderr, "trainer export: %s: %d tensors, %d tokens, %.1f MB (%s)\n", w.Name, st.Tensors, st.Tokens, float64(st.Bytes)/1e6, o.Type)
		}
		return nil
	}()
	return c.Exit(err, stdout, stderr)
}

// ExportOptions say what to export.
type ExportOptions struct {
	Model string // model directory
	Type  string // f32, f16, q8_0
	Name  string // general.name
}

// ExportStats summarise an export.
type ExportStats struct {
	Tensors, Tokens int
	Bytes           int64
}

// ParseType maps a --type name to the ggml type of 2-D weights.
func ParseType(s string) (GGMLType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32":
		return F32, nil
	case "f16", "float16":
		return F16, nil
	case "q8_0":
		return Q8_0, nil
	}
	return 0, fmt.Errorf("%q is not a GGUF type this exporter writes (f32, f16, q8_0)", s)
}

// llama.cpp's general.file_type values (LLAMA_FTYPE_*).
var fileType = map[GGMLType]uint32{F32: 0, F16: 1, Q8_0: 7}

// tensorMap gives llama.cpp's name of a Hugging Face tensor, and for
// q_proj/k_proj the number of heads its rows are permuted over.
func tensorMap(hf string, cfg llama.Config) (name string, permHeads int, ok bool) {
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight", 0, true
	case "model.norm.weight":
		return "output_norm.weight", 0, true
	case "lm_head.weight":
		return "output.weight", 0, true
	}
	var l int
	var rest string
	if n, _ := fmt.Sscanf(hf, "model.layers.%d.", &l); n != 1 {
		return "", 0, false
	}
	rest = strings.TrimPrefix(hf, fmt.Sprintf("model.layers.%d.", l))
	blk := fmt.Sprintf("blk.%d.", l)
	switch rest {
	case "self_attn.q_proj.weight":
		return blk + "attn_q.weight", cfg.NumAttentionHeads, true
	case "self_attn.k_proj.weight":
		return blk + "attn_k.weight", cfg.NumKeyValueHeads, true
	case "self_attn.v_proj.weight":
		return blk + "attn_v.weight", 0, true
	case "self_attn.o_proj.weight":
		return blk + "attn_output.weight", 0, true
	case "mlp.gate_proj.weight":
		return blk + "ffn_gate.weight", 0, true
	case "mlp.up_proj.weight":
		return blk + "ffn_up.weight", 0, true
	case "mlp.down_proj.weight":
		return blk + "ffn_down.weight", 0, true
	case "input_layernorm.weight":
		return blk + "attn_norm.weight", 0, true
	case "post_attention_layernorm.weight":
		return blk + "ffn_norm.weight", 0, true
	}
	return "", 0, false
}

// PermuteRoPE reorders the rows of a q_proj or k_proj weight [heads*hd,
// cols] from Hugging Face's rotate-half layout (within a head: the first
// halves of all pairs, then the second halves) to the interleaved layout
// of llama.cpp's rotary embedding (pair i on rows 2i, 2i+1).
func PermuteRoPE(w []float32, heads, cols int) []float32 {
	rows := len(w) / cols
	hd := rows / heads
	half := hd / 2
	out := make([]float32, len(w))
	for h := 0; h < heads; h++ {
		for s := 0; s < 2; s++ {
			for i := 0; i < half; i++ {
				src := h*hd + s*half + i
				dst := h*hd + 2*i + s
				copy(out[dst*cols:(dst+1)*cols], w[src*cols:(src+1)*cols])
			}
		}
	}
	return out
}

// Vocab builds the tokenizer.ggml arrays from a SentencePiece model, padded
// to vocab entries: an id that config.json names as pad_token_id becomes
// "[PAD]" (control), other extra rows "[PAD<id>]" (unused).
func Vocab(tok *sentencepiece.Model, vocab int, padID int) (tokens []string, scores []float32, types []int32) {
	for i, p := range tok.Pieces {
		if i >= vocab {
			break
		}
		tokens = append(tokens, p.Piece)
		scores = append(scores, p.Score)
		types = append(types, int32(p.Type))
	}
	for id := len(tokens); id < vocab; id++ {
		if id == padID {
			tokens = append(tokens, "[PAD]")
			types = append(types, int32(sentencepiece.Control))
		} else {
			tokens = append(tokens, fmt.Sprintf("[PAD%d]", id))
			types = append(types, int32(sentencepiece.Unused))
		}
		scores = append(scores, 0)
	}
	return tokens, scores, types
}

// Export writes the GGUF file of o.Model to w.
func Export(w io.Writer, o ExportOptions) (ExportStats, error) {
	var st ExportStats
	wt, err := ParseType(o.Type)
	if err != nil {
		return st, err
	}
	dir := o.Model
	cfg, err := llama.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return st, err
	}
	tp := filepath.Join(dir, llama.TokenizerFile)
	tok, err := sentencepiece.Load(tp)
	if err != nil {
		return st, fmt.Errorf("%s: %w (GGUF files carry the vocabulary)", tp, err)
	}
	if tok.VocabSize() > cfg.VocabSize {
		return st, fmt.Errorf("%s: the tokenizer has %d pieces, the model %d rows", dir, tok.VocabSize(), cfg.VocabSize)
	}
	src, err := safetensors.OpenDir(dir)
	if err != nil {
		return st, err
	}
	defer src.Close()
	name := o.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}
	padID, hasPad := cfg.PadTokenID()
	if !hasPad {
		padID = -1
	}
	tokens, scores, types := Vocab(tok, cfg.VocabSize, padID)
	st.Tokens = len(tokens)
	u32 := func(v int) uint32 { return uint32(v) }
	kvs := []KV{
		{"general.architecture", "llama"},
		{"general.name", name},
		{"general.file_type", fileType[wt]},
		{"llama.vocab_size", u32(cfg.VocabSize)},
		{"llama.context_length", u32(cfg.MaxPositionEmbeddings)},
		{"llama.embedding_length", u32(cfg.HiddenSize)},
		{"llama.block_count", u32(cfg.NumHiddenLayers)},
		{"llama.feed_forward_length", u32(cfg.IntermediateSize)},
		{"llama.rope.dimension_count", u32(cfg.HeadDim())},
		{"llama.attention.head_count", u32(cfg.NumAttentionHeads)},
		{"llama.attention.head_count_kv", u32(cfg.NumKeyValueHeads)},
		{"llama.attention.layer_norm_rms_epsilon", float32(cfg.RMSNormEps)},
		{"llama.rope.freq_base", float32(cfg.RopeTheta)},
	}
	if wt == Q8_0 {
		kvs = append(kvs, KV{"general.quantization_version", uint32(2)})
	}
	kvs = append(kvs,
		KV{"tokenizer.ggml.model", "llama"},
		KV{"tokenizer.ggml.tokens", tokens},
		KV{"tokenizer.ggml.scores", scores},
		KV{"tokenizer.ggml.token_type", types},
	)
	bos, eos := int(tok.BosID()), int(tok.EosID())
	for _, k := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.bos_token_id", bos}, {"tokenizer.ggml.eos_token_id", eos}, {"tokenizer.ggml.unknown_token_id", int(tok.UnkID())}, {"tokenizer.ggml.padding_token_id", padID}} {
		if k.id >= 0 && k.id < cfg.VocabSize {
			kvs = append(kvs, KV{k.key, uint32(k.id)})
		}
	}
	kvs = append(kvs, KV{"tokenizer.ggml.add_bos_token", bos >= 0}, KV{"tokenizer.ggml.add_eos_token", false},
		KV{"tokenizer.ggml.add_space_prefix", tok.Normalizer.AddDummyPrefix},
		KV{"tokenizer.ggml.remove_extra_whitespaces", tok.Normalizer.RemoveExtraWhitespaces})

	// tensors in llama.cpp's order: embeddings, blocks, final norm, output
	type item struct {
		hf, name string
		heads    int
		info     TensorInfo
	}
	var items []item
	add := func(hf string) error {
		name, heads, ok := tensorMap(hf, cfg)
		if !ok {
			return fmt.Errorf("%s: tensor %q has no GGUF name", dir, hf)
		}
		info, ok := src.Info(hf)
		if !ok {
			return fmt.Errorf("%s: tensor %q missing", dir, hf)
		}
		if !info.DType.IsFloat() {
			return fmt.Errorf("%s: tensor %q has dtype %s", dir, hf, info.DType)
		}
		if len(info.Shape) < 1 || len(info.Shape) > 2 {
			return fmt.Errorf("%s: tensor %q has %d dimensions", dir, hf, len(info.Shape))
		}
		if want := hfShape(hf, cfg); !slices.Equal(info.Shape, want) {
			return fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", dir, hf, info.Shape, want)
		}
		ti := TensorInfo{Name: name, Type: F32}
		for i := len(info.Shape) - 1; i >= 0; i-- {
			if info.Shape[i] <= 0 {
				return fmt.Errorf("%s: tensor %q has shape %v", dir, hf, info.Shape)
			}
			ti.Dims = append(ti.Dims, uint64(info.Shape[i]))
		}
		if len(ti.Dims) == 2 {
			ti.Type = wt
			if wt == Q8_0 && ti.Dims[0]%Q8Block != 0 {
				ti.Type = F16
			}
		}
		items = append(items, item{hf: hf, name: name, heads: heads, info: ti})
		return nil
	}
	hfNames := []string{"model.embed_tokens.weight"}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		for _, s := range []string{"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
			"self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
			"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"} {
			hfNames = append(hfNames, p+s)
		}
	}
	hfNames = append(hfNames, "model.norm.weight")
	if !cfg.TieWordEmbeddings {
		hfNames = append(hfNames, "lm_head.weight")
	}
	for _, n := range hfNames {
		if err := add(n); err != nil {
			return st, err
		}
	}
	infos := make([]TensorInfo, len(items))
	for i, it := range items {
		infos[i] = it.info
	}
	cw := &countWriter{w: w}
	gw, err := NewWriter(cw, kvs, infos)
	if err != nil {
		return st, err
	}
	var buf []byte
	for _, it := range items {
		v, err := src.Float32(it.hf)
		if err != nil {
			return st, fmt.Errorf("%s: tensor %q: %w", dir, it.hf, err)
		}
		if it.heads > 0 {
			rows := int(it.info.Dims[1])
			if it.heads <= 0 || rows%it.heads != 0 || (rows/it.heads)%2 != 0 {
				return st, fmt.Errorf("%s: tensor %q: %d rows do not split into %d heads of even size", dir, it.hf, rows, it.heads)
			}
			v = PermuteRoPE(v, it.heads, int(it.info.Dims[0]))
		}
		buf = buf[:0]
		switch it.info.Type {
		case F32:
			buf = appendF32(buf, v)
		case F16:
			buf = EncodeF16(buf, v)
		case Q8_0:
			buf = QuantizeQ8_0(buf, v)
		}
		if err := gw.WriteTensor(it.name, buf); err != nil {
			return st, err
		}
	}
	if err := gw.Close(); err != nil {
		return st, err
	}
	st.Tensors = len(items)
	st.Bytes = cw.n
	return st, nil
}

func appendF32(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = appendScalar(dst, x)
	}
	return dst
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// hfShape is the shape config.json implies for a Hugging Face tensor.
func hfShape(hf string, cfg llama.Config) []int64 {
	D, I, V := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.VocabSize)
	Dkv := int64(cfg.NumKeyValueHeads * cfg.HeadDim())
	switch {
	case hf == "model.embed_tokens.weight" || hf == "lm_head.weight":
		return []int64{V, D}
	case strings.HasSuffix(hf, "norm.weight"):
		return []int64{D}
	case strings.HasSuffix(hf, "q_proj.weight") || strings.HasSuffix(hf, "o_proj.weight"):
		return []int64{D, D}
	case strings.HasSuffix(hf, "k_proj.weight") || strings.HasSuffix(hf, "v_proj.weight"):
		return []int64{Dkv, D}
	case strings.HasSuffix(hf, "gate_proj.weight") || strings.HasSuffix(hf, "up_proj.weight"):
		return []int64{I, D}
	case strings.HasSuffix(hf, "down_proj.weight"):
		return []int64{D, I}
	}
	return nil
}

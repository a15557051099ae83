// Command genllama writes a random LLaMA-shaped model directory for the
// generate benchmarks: config.json (GQA, context, dtype), safetensors in
// float32, bfloat16 or float16 (HF-style shards above 5 GB), and a copy of
// a tokenizer. Tensors are streamed in 1 MiB pieces, so a 7B bf16 model
// needs no more memory than the pieces:
//
//	go run ./scripts/bench/genllama -out /tmp/m7b -dim 4096 -ffn 11008 -layers 32 -heads 32 -dtype bfloat16 -tokenizer tok.model
//
// Weights are uniform in ±0.035 (std 0.02), norms are 1. They only have to
// be the right shapes: the benchmark measures speed.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/x448/float16"
)

func main() {
	out := flag.String("out", "", "output directory")
	dim := flag.Int64("dim", 768, "hidden size")
	ffn := flag.Int64("ffn", 2048, "intermediate size")
	layers := flag.Int("layers", 12, "layers")
	heads := flag.Int64("heads", 12, "attention heads")
	kv := flag.Int64("kv", 0, "key/value heads (default: heads)")
	vocab := flag.Int64("vocab", 32000, "vocab rows")
	ctx := flag.Int("ctx", 2048, "max_position_embeddings")
	tied := flag.Bool("tied", false, "tie lm_head to the embeddings")
	dtype := flag.String("dtype", "float32", "float32, bfloat16 or float16")
	tok := flag.String("tokenizer", "", "tokenizer.model to copy in")
	seed := flag.Uint64("seed", 1, "seed")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genllama: -out is required")
		os.Exit(2)
	}
	if *kv == 0 {
		*kv = *heads
	}
	dt, err := safetensors.ParseDType(*dtype)
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	hd := *dim / *heads
	type T struct {
		name  string
		shape []int64
	}
	ts := []T{{"model.embed_tokens.weight", []int64{*vocab, *dim}}}
	for l := 0; l < *layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts, T{p + "self_attn.q_proj.weight", []int64{*dim, *dim}}, T{p + "self_attn.k_proj.weight", []int64{*kv * hd, *dim}},
			T{p + "self_attn.v_proj.weight", []int64{*kv * hd, *dim}}, T{p + "self_attn.o_proj.weight", []int64{*dim, *dim}},
			T{p + "mlp.gate_proj.weight", []int64{*ffn, *dim}}, T{p + "mlp.up_proj.weight", []int64{*ffn, *dim}},
			T{p + "mlp.down_proj.weight", []int64{*dim, *ffn}}, T{p + "input_layernorm.weight", []int64{*dim}},
			T{p + "post_attention_layernorm.weight", []int64{*dim}})
	}
	ts = append(ts, T{"model.norm.weight", []int64{*dim}})
	if !*tied {
		ts = append(ts, T{"lm_head.weight", []int64{*vocab, *dim}})
	}
	var infos []safetensors.TensorInfo
	var total int64
	for _, t := range ts {
		ti := safetensors.TensorInfo{Name: t.name, DType: dt, Shape: t.shape}
		infos = append(infos, ti)
		total += ti.NumBytes()
	}
	r := rand.New(rand.NewPCG(*seed, 7))
	write := func(path string, group []safetensors.TensorInfo) error {
		w, err := safetensors.NewWriter(path, group, map[string]string{"format": "pt"})
		if err != nil {
			return err
		}
		buf := make([]byte, 0, 1<<20)
		for _, ti := range group {
			if err := w.Begin(ti.Name); err != nil {
				w.Abort()
				return err
			}
			n := ti.NumElements()
			norm := len(ti.Shape) == 1
			for n > 0 {
				buf = buf[:0]
				for n > 0 && len(buf)+4 <= cap(buf) {
					x := float32(1)
					if !norm {
						x = float32((r.Float64()*2 - 1) * 0.0346)
					}
					switch dt {
					case safetensors.F32:
						buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
					case safetensors.BF16:
						buf = binary.LittleEndian.AppendUint16(buf, safetensors.Float32ToBF16(x))
					default:
						buf = binary.LittleEndian.AppendUint16(buf, uint16(float16.Fromfloat32(x)))
					}
					n--
				}
				if _, err := w.Write(buf); err != nil {
					w.Abort()
					return err
				}
			}
		}
		return w.Commit()
	}
	const maxShard = 5_000_000_000
	if total <= maxShard {
		err = write(filepath.Join(*out, "model.safetensors"), infos)
	} else {
		plan := safetensors.PlanShards(infos, maxShard)
		index := map[string][]safetensors.TensorInfo{}
		for i, g := range plan {
			name := safetensors.ShardName(i+1, len(plan))
			if err = write(filepath.Join(*out, name), g); err != nil {
				break
			}
			index[name] = g
		}
		if err == nil {
			err = safetensors.WriteIndex(*out, index)
		}
	}
	if err != nil {
		fail(err)
	}
	cfg := map[string]any{"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "hidden_act": "silu",
		"hidden_size": *dim, "intermediate_size": *ffn, "num_hidden_layers": *layers, "num_attention_heads": *heads,
		"num_key_value_heads": *kv, "vocab_size": *vocab, "max_position_embeddings": *ctx, "rms_norm_eps": 1e-6,
		"rope_theta": 10000.0, "initializer_range": 0.02, "tie_word_embeddings": *tied, "torch_dtype": dt.TorchName(),
		"bos_token_id": 1, "eos_token_id": 2}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "config.json"), append(b, '\n'), 0o644); err != nil {
		fail(err)
	}
	if *tok != "" {
		in, err := os.Open(*tok)
		if err != nil {
			fail(err)
		}
		o, err := os.Create(filepath.Join(*out, "tokenizer.model"))
		if err != nil {
			fail(err)
		}
		if _, err := io.Copy(o, in); err != nil {
			fail(err)
		}
		o.Close()
		in.Close()
	}
	var params int64
	for _, ti := range infos {
		params += ti.NumElements()
	}
	fmt.Fprintf(os.Stderr, "genllama: %s: %.1fM params, %s, %.2f GB\n", *out, float64(params)/1e6, dt.TorchName(), float64(total)/1e9)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genllama:", err)
	os.Exit(1)
}

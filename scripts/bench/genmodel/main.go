// Command genmodel writes a synthetic LLaMA-shaped Hugging Face model
// directory (float32 safetensors, sharded, config.json) for benchmarks:
//
//	go run ./scripts/bench/genmodel -out /tmp/raw -dim 2048 -layers 8
//	go run ./scripts/bench/genmodel -out /tmp/tuned -dim 2048 -layers 8 -tweak 1e-3 -pad
//
// The same -seed gives the same base weights; -tweak adds noise of that
// scale (a "fine-tuned" copy); -pad adds Alpaca's extra [PAD] vocab row.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

func main() {
	out := flag.String("out", "", "output directory")
	dim := flag.Int64("dim", 2048, "hidden size")
	ffn := flag.Int64("ffn", 0, "intermediate size (default 2.6875*dim)")
	layers := flag.Int("layers", 8, "layers")
	vocab := flag.Int64("vocab", 32000, "vocab rows")
	pad := flag.Bool("pad", false, "one more vocab row (Alpaca's [PAD])")
	tweak := flag.Float64("tweak", 0, "noise scale added to every weight")
	seed := flag.Int64("seed", 1, "base weights seed")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genmodel: -out is required")
		os.Exit(2)
	}
	if *ffn == 0 {
		*ffn = *dim * 43 / 16
	}
	v := *vocab
	if *pad {
		v++
	}
	type spec struct {
		name  string
		shape []int64
		norm  bool
	}
	specs := []spec{{"model.embed_tokens.weight", []int64{v, *dim}, false}}
	for l := 0; l < *layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "o_proj"} {
			specs = append(specs, spec{p + "self_attn." + n + ".weight", []int64{*dim, *dim}, false})
		}
		specs = append(specs,
			spec{p + "mlp.gate_proj.weight", []int64{*ffn, *dim}, false},
			spec{p + "mlp.up_proj.weight", []int64{*ffn, *dim}, false},
			spec{p + "mlp.down_proj.weight", []int64{*dim, *ffn}, false},
			spec{p + "input_layernorm.weight", []int64{*dim}, true},
			spec{p + "post_attention_layernorm.weight", []int64{*dim}, true})
	}
	specs = append(specs, spec{"model.norm.weight", []int64{*dim}, true}, spec{"lm_head.weight", []int64{v, *dim}, false})
	var infos []safetensors.TensorInfo
	for _, s := range specs {
		infos = append(infos, safetensors.TensorInfo{Name: s.name, DType: safetensors.F32, Shape: s.shape})
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	plan := safetensors.PlanShards(infos, 1<<30)
	index := map[string][]safetensors.TensorInfo{}
	k := 0
	for i, group := range plan {
		name := safetensors.ShardName(i+1, len(plan))
		if len(plan) == 1 {
			name = "model.safetensors"
		}
		w, err := safetensors.NewWriter(filepath.Join(*out, name), group, map[string]string{"format": "pt"})
		if err != nil {
			fail(err)
		}
		for _, ti := range group {
			s := specs[k]
			k++
			// base values depend on (seed, tensor, row) only, so the raw and the
			// padded tuned model share them; the noise has its own stream.
			base := rand.New(rand.NewSource(*seed*1000003 + int64(k)))
			noise := rand.New(rand.NewSource(*seed*7919 + int64(k) + 99991))
			if err := w.Begin(ti.Name); err != nil {
				fail(err)
			}
			n := ti.NumElements()
			buf := make([]byte, 0, 1<<20)
			for j := int64(0); j < n; j++ {
				var x float64
				if s.norm {
					x = 1 + 0.05*base.NormFloat64()
				} else {
					x = 0.02 * base.NormFloat64()
				}
				if *tweak > 0 {
					x += *tweak * noise.NormFloat64()
				}
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32(x)))
				if len(buf) == cap(buf) {
					w.Write(buf)
					buf = buf[:0]
				}
			}
			if _, err := w.Write(buf); err != nil {
				fail(err)
			}
		}
		if err := w.Commit(); err != nil {
			fail(err)
		}
		index[name] = group
	}
	if len(plan) > 1 {
		if err := safetensors.WriteIndex(*out, index); err != nil {
			fail(err)
		}
	}
	cfg := fmt.Sprintf(`{"architectures": ["LlamaForCausalLM"], "hidden_size": %d, "intermediate_size": %d, "num_hidden_layers": %d, "vocab_size": %d, "torch_dtype": "float32"}`+"\n", *dim, *ffn, *layers, v)
	if err := os.WriteFile(filepath.Join(*out, "config.json"), []byte(cfg), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genmodel:", err)
	os.Exit(1)
}

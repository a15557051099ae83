package llama

import (
	"fmt"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// header is what checkHeader needs of an opened model file or shard set.
type header interface {
	Names() []string
	Info(name string) (safetensors.TensorInfo, bool)
}

// checkHeader compares the tensors a weights header declares with those
// the config implies, before anything is allocated from the config: a
// config.json that claims more (layers, vocabulary) than the weights hold
// is an error here, not a huge allocation.
func checkHeader(dir string, cfg Config, st header) error {
	want := map[string]bool{}
	for _, t := range cfg.Tensors() {
		want[t.Name] = true
		info, ok := st.Info(t.Name)
		if !ok {
			return fmt.Errorf("%s: tensor %q missing (config.json implies %d layers, vocab %d)", dir, t.Name, cfg.NumHiddenLayers, cfg.VocabSize)
		}
		if !sameShape(info.Shape, t.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", dir, t.Name, info.Shape, t.Shape)
		}
		if !info.DType.IsFloat() {
			return fmt.Errorf("%s: tensor %q has dtype %s, want a float type", dir, t.Name, info.DType)
		}
	}
	for _, name := range st.Names() {
		if want[name] || strings.HasSuffix(name, "rotary_emb.inv_freq") || (name == "lm_head.weight" && cfg.TieWordEmbeddings) {
			continue
		}
		return fmt.Errorf("%s: unexpected tensor %q for a LlamaForCausalLM with this config", dir, name)
	}
	return nil
}

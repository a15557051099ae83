package train

import (
	"testing"

	"github.com/alpaca-go/alpaca/pkg/llama"
)

func TestPlanMemory(t *testing.T) {
	// LLaMA-7B (Hugging Face's llama-7b config): 6,738,415,616 parameters.
	c := llama.DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 4096, 11008, 32
	c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize = 32, 32, 32000
	p := PlanMemory(c, 4, 512)
	if p.Params != 6738415616 {
		t.Errorf("7B params %d, want 6738415616", p.Params)
	}
	if p.Weights+p.Grads+p.Optimizer != 16*p.Params {
		t.Errorf("weights+grads+optimizer %d, want 16 bytes per parameter", p.Weights+p.Grads+p.Optimizer)
	}
	// the count agrees with the model's own parameter list (GQA, tied)
	tiny, err := llama.Preset("tiny", 100)
	if err != nil {
		t.Fatal(err)
	}
	tiny.NumKeyValueHeads, tiny.TieWordEmbeddings = 2, true
	if got, want := PlanMemory(tiny, 1, 8).Params, int64(llama.New(tiny, 1).NumParams()); got != want {
		t.Errorf("tiny GQA tied: %d params, model has %d", got, want)
	}
}

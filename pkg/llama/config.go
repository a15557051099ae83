// Package llama is the LLaMA architecture of Hugging Face's
// LlamaForCausalLM in fp32: config.json, HF tensor names, HF-like random
// init, forward and a hand-written backward pass, and loading/saving model
// directories (config.json + safetensors + tokenizer.model).
package llama

import (
	"encoding/json"
	"fmt"
	"os"
)

// Config is the subset of Hugging Face's LlamaConfig the model uses; JSON
// tags are HF's field names. Unknown fields of a loaded config.json are kept
// in Extra and written back on Save.
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
	BOSTokenID            *int    `json:"bos_token_id,omitempty"`
	EOSTokenID            *int    `json:"eos_token_id,omitempty"`
	PadTokenID            *int    `json:"pad_token_id,omitempty"`

	// Extra holds the config.json fields not listed above (kept verbatim).
	Extra map[string]json.RawMessage `json:"-"`
}

// HeadDim is HiddenSize / NumAttentionHeads.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// LoadConfig reads a Hugging Face config.json.
func LoadConfig(path string) (Config, error) {
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

// ParseConfig decodes config.json bytes, filling HF's defaults for absent
// fields, and validates the result.
func ParseConfig(data []byte) (Config, error) {
	return Config{}, fmt.Errorf("llama: ParseConfig not implemented yet")
}

// Validate checks that the shapes are consistent.
func (c Config) Validate() error { return nil }

// Package generate runs a trained LLaMA model: batch completion of JSONL
// records, a terminal chat, and an OpenAI-compatible HTTP server. See
// docs/generate.md.
//
// The model is reached through LM, a small forward-only interface: a
// sequence (Seq) is fed tokens and answers the logits of its last
// position; FeedBatch advances several sequences by one token together.
// lm_kv.go implements it over the KV-cache inference API of pkg/llama
// (llama.Open, NewKVCache, Feed, FeedBatch): the same model definition the
// trainer uses.
package generate

import (
	"fmt"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
)

// Seq is the state of one sequence inside an LM.
type Seq interface {
	Len() int       // positions fed so far
	Cap() int       // the most positions it can hold
	Truncate(n int) // keep the first n positions (0 = reset)
}

// LM is a causal language model for inference. It is not safe for
// concurrent use: one goroutine owns it.
type LM interface {
	VocabSize() int
	// NewSeq makes an empty sequence for at most maxLen positions.
	NewSeq(maxLen int) (Seq, error)
	// Feed appends toks to s and returns the logits of the last position
	// (VocabSize values, valid until the next call).
	Feed(s Seq, toks []int32) ([]float32, error)
	// FeedBatch appends toks[i] to ss[i] for every i and returns the
	// logits of those positions, row after row.
	FeedBatch(ss []Seq, toks []int32) ([]float32, error)
}

// Options say how a model is opened.
type Options struct {
	Threads int    // compute threads (0: GOMAXPROCS)
	DType   string // "" keeps the stored weight type; "float32" converts
	Adapter string // a PEFT LoRA adapter directory applied at load ("": none)
}

// Model is a loaded model directory: the LM, its tokenizer and the token
// ids that matter for generation.
type Model struct {
	Dir    string
	Name   string // the directory's base name, used as the model id
	LM     LM
	Tok    *sentencepiece.Model
	Config llama.Config
	BOS    int32 // -1: none
	EOS    int32 // -1: none
	MaxLen int   // max_position_embeddings
}

// Load opens a model directory (config.json, safetensors, tokenizer.model).
func Load(dir string, opt Options) (*Model, error) {
	cfg, err := llama.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	tp := filepath.Join(dir, llama.TokenizerFile)
	tok, err := sentencepiece.Load(tp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (generate needs the tokenizer next to the weights)", tp, err)
	}
	if tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("%s: the tokenizer has %d pieces but the model only %d rows", dir, tok.VocabSize(), cfg.VocabSize)
	}
	lm, err := OpenLM(dir, opt)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Name: filepath.Base(filepath.Clean(dir)), LM: lm, Tok: tok, Config: cfg, MaxLen: cfg.MaxPositionEmbeddings}
	m.BOS = configID(cfg, "bos_token_id", tok.BosID())
	m.EOS = configID(cfg, "eos_token_id", tok.EosID())
	return m, nil
}

// configID reads an integer id from config.json's extra fields, falling
// back to the tokenizer's.
func configID(cfg llama.Config, key string, def int32) int32 {
	raw, ok := cfg.Extra[key]
	if !ok {
		return def
	}
	var id int
	if _, err := fmt.Sscanf(string(raw), "%d", &id); err != nil || id < 0 || id >= cfg.VocabSize {
		return def
	}
	return int32(id)
}

// EncodePrompt is BOS (when the model has one) followed by the prompt's
// pieces, as the tokenize stage makes training examples.
func (m *Model) EncodePrompt(text string) []int32 {
	ids := make([]int32, 0, len(text)/3+2)
	if m.BOS >= 0 {
		ids = append(ids, m.BOS)
	}
	return append(ids, m.Tok.Encode(text)...)
}

package generate

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/prompt"
)

const smallTok = "../sentencepiece/testdata/small_bpe.model" // 800 pieces, byte fallback

var (
	tinyOnce sync.Once
	tinyDir  string
	tinyErr  error
)

// tinyModel is a random model directory with the small BPE tokenizer
// (shared by the tests of a run; read-only). eos_token_id is 2.
func tinyModel(t testing.TB) string {
	t.Helper()
	tinyOnce.Do(func() {
		cfg := llama.DefaultConfig()
		cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 32, 64, 2
		cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, 2
		cfg.VocabSize, cfg.MaxPositionEmbeddings, cfg.InitializerRange = 800, 1024, 0.5
		cfg.Extra = map[string]json.RawMessage{"bos_token_id": json.RawMessage("1"), "eos_token_id": json.RawMessage("2")}
		m := llama.New(cfg, 5)
		m.TokenizerPath = smallTok
		dir, err := osMkdirTemp()
		if err != nil {
			tinyErr = err
			return
		}
		tinyDir = filepath.Join(dir, "tiny")
		tinyErr = m.Save(tinyDir, "float32")
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyDir
}

func loadTiny(t testing.TB) *Model {
	t.Helper()
	m, err := Load(tinyModel(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func builtinTemplate(name string) (*prompt.Template, bool) { return prompt.Builtin(name) }

package sentencepiece

import (
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/llama_ids.jsonl: the ids of testdata/corpus.jsonl under the LLaMA
// tokenizer, made by
//
//	/usr/bin/python3 scripts/fixtures/sentencepiece_corpus.py
//	/usr/bin/python3 scripts/fixtures/spm_ids.py ../shared/data/llama-tokenizer.model \
//	    < pkg/sentencepiece/testdata/corpus.jsonl > pkg/sentencepiece/testdata/llama_ids.jsonl
//
// (python3-sentencepiece 0.1.97, the library spm_encode uses).
func TestLlamaFixture(t *testing.T) {
	m, _ := llamaModel(t)
	fs := readFixtures(t, filepath.Join("testdata", "llama_ids.jsonl"))
	var want [][]int32
	for _, f := range fs {
		want = append(want, f.IDs)
	}
	compareIDs(t, m, textsOf(fs), want)
}

// TestRandomTextsMatchReference: random strings over an adversarial
// alphabet (spaces, ▁, tabs, newlines, control characters, combining marks,
// CJK, emoji, invalid-looking sequences) against the reference library.
func TestRandomTextsMatchReference(t *testing.T) {
	m, path := llamaModel(t)
	if !havePySPM() {
		t.Skip("python3-sentencepiece not installed")
	}
	alpha := []string{" ", " ", "  ", "\u2581", "\t", "\n", "\r", "\x00", "\x1f", "\x7f", "a", "e", "t", "th", "he", "in", "ing", "The", "the",
		"0", "1", "42", ".", ",", "!", "'", "\"", "-", "é", "e\u0301", "ß", "中", "文", "の", "한", "😀", "👍🏽", "\u200b", "\ufeff", "\u00a0", "\U0001F1EB", "<s>", "</s>", "<0x0A>", "▁▁"}
	r := rand.New(rand.NewSource(3))
	var texts []string
	for i := 0; i < 3000; i++ {
		n := r.Intn(40)
		var sb strings.Builder
		for j := 0; j < n; j++ {
			sb.WriteString(alpha[r.Intn(len(alpha))])
		}
		texts = append(texts, sb.String())
	}
	compareIDs(t, m, texts, refEncode(t, path, texts))
}

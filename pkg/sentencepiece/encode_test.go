package sentencepiece

import (
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
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

// TestSmallModelFixtures needs nothing outside the repo: a BPE model made by
// spm_train on our own text and the ids spm_encode gave for the corpus lines
// (and python3-sentencepiece for the multi-line texts). Made by
// scripts/fixtures/sentencepiece_small.sh.
func TestSmallModelFixtures(t *testing.T) {
	m, err := Load(filepath.Join("testdata", "small_bpe.model"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.ByteFallback() || m.Normalizer.Name != "identity" || len(m.userDefined) != 1 {
		t.Fatalf("fixture model settings: %+v %+v", m.Trainer, m.Normalizer)
	}
	linesB, err := os.ReadFile(filepath.Join("testdata", "small_lines.txt"))
	if err != nil {
		t.Fatal(err)
	}
	idsB, err := os.ReadFile(filepath.Join("testdata", "small_lines.ids"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(linesB), "\n"), "\n")
	rows := strings.Split(strings.TrimSuffix(string(idsB), "\n"), "\n")
	if len(lines) != len(rows) {
		t.Fatalf("%d lines, %d id rows", len(lines), len(rows))
	}
	var want [][]int32
	for _, r := range rows {
		var ids []int32
		for _, f := range strings.Fields(r) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, int32(n))
		}
		want = append(want, ids)
	}
	compareIDs(t, m, lines, want)

	fs := readFixtures(t, filepath.Join("testdata", "small_ids.jsonl"))
	want = want[:0]
	for _, f := range fs {
		want = append(want, f.IDs)
	}
	compareIDs(t, m, textsOf(fs), want)
}

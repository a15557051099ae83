package sentencepiece

import (
	"path/filepath"
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

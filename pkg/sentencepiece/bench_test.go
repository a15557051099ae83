package sentencepiece

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchCorpus is the Alpaca text when present, else generated text.
func benchCorpus(b *testing.B) []string {
	path := filepath.Join(repoRoot(b), "..", "shared", "data", "alpaca_data.json")
	if data, err := os.ReadFile(path); err == nil {
		return strings.Split(string(data), "\n")
	}
	return strings.Split(trainingText(b, 20000), "\n")
}

func BenchmarkEncode(b *testing.B) {
	m, _ := llamaModel(b)
	lines := benchCorpus(b)
	n := 0
	for _, l := range lines {
		n += len(l)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := m.NewEncoder()
		var ids []int32
		for _, l := range lines {
			ids = e.Append(ids[:0], l)
		}
	}
}

// BenchmarkEncodeNoCache measures the BPE merge loop itself: every word is
// new to the encoder.
func BenchmarkEncodeNoCache(b *testing.B) {
	m, _ := llamaModel(b)
	lines := benchCorpus(b)[:20000]
	n := 0
	for _, l := range lines {
		n += len(l)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := m.NewEncoder()
		var ids []int32
		for _, l := range lines {
			clear(e.cache)
			ids = e.Append(ids[:0], l)
		}
	}
}

func BenchmarkTrain(b *testing.B) {
	text := trainingText(b, 20000)
	for i := 0; i < b.N; i++ {
		trainModel(b, 4000, TrainOptions{SplitDigits: true}, text)
	}
}

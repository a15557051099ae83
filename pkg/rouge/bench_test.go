package rouge

import (
	"fmt"
	"math/rand"
	"os"
	"testing"
)

// BenchmarkAlpaca is the whole greedy job: the 52,002 Alpaca instructions
// against the 175 seed tasks (../shared/data; generated data when absent).
func BenchmarkAlpaca(b *testing.B) {
	seeds, data := benchData(b)
	for _, th := range []float64{0.7, 0.5, 0.3} {
		b.Run(fmt.Sprint(th), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				f := NewFilter(th)
				for _, s := range seeds {
					f.Add(s)
				}
				b.ReportMetric(float64(greedy(f, data)), "kept")
			}
		})
	}
}

func benchData(b testing.TB) (seeds, data []string) {
	sd, ad := sharedDataOK("seed_tasks.jsonl"), sharedDataOK("alpaca_data.json")
	if sd != "" && ad != "" {
		return readField(b, sd, "instruction"), readField(b, ad, "instruction")
	}
	b.Log("../shared/data absent: generated data")
	rng := rand.New(rand.NewSource(1))
	all := nearDupStream(rng, 52002+175, 20000, 25)
	return all[:175], all[175:]
}

func BenchmarkTokenize(b *testing.B) {
	s := "Generate a list of 5 creative ideas for a birthday party, with a short explanation for each."
	b.SetBytes(int64(len(s)))
	for i := 0; i < b.N; i++ {
		Tokenize(s)
	}
}

func BenchmarkLCS64(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	x, y := soup(rng, 20, 30), soup(rng, 20, 30)
	ids := map[string]int32{}
	a, c := intern(ids, x), intern(ids, y)
	var m matcher
	m.set(a, 0)
	for i := 0; i < b.N; i++ {
		m.lcs(c)
	}
}

// BenchmarkAnnotate is SimilarAt (top 10 and the mean) for every record
// kept by the Alpaca job at 0.7, against the pool as it was when the
// record was decided, on one goroutine.
func BenchmarkAnnotate(b *testing.B) {
	seeds, data := benchData(b)
	f := NewFilter(0.7)
	for _, s := range seeds {
		f.Add(s)
	}
	var jobs []int
	var texts []string
	for lo := 0; lo < len(data); lo += 2048 {
		for j, r := range f.CheckBatch(data[lo:min(lo+2048, len(data))], true, 0) {
			if r.Keep {
				jobs = append(jobs, r.Index)
				texts = append(texts, data[lo+j])
			}
		}
	}
	if n := benchAnnotateN; n > 0 && n < len(jobs) {
		jobs, texts = jobs[len(jobs)-n:], texts[len(texts)-n:]
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum := 0.0
		for j := 0; j < len(jobs); j += SimilarBatchSize {
			_, avgs := f.SimilarBatch(texts[j:min(j+SimilarBatchSize, len(jobs))], 10, jobs[j:min(j+SimilarBatchSize, len(jobs))])
			for _, a := range avgs {
				sum += a
			}
		}
		b.ReportMetric(sum, "sum")
	}
}

// benchAnnotateN limits BenchmarkAnnotate to the last N kept records (0: all).
var benchAnnotateN = 0

// BenchmarkScaleFile is the greedy job at 0.7 without a seed pool on the
// instructions of $RF_SCALE_FILE (e.g. written by scripts/bench/rfscale), in
// batches of 2048 as rougefilter runs it; for profiling the scaling inputs:
//
//	RF_SCALE_FILE=in800000.jsonl go test ./pkg/rouge -run X -bench ScaleFile -benchtime 1x -cpuprofile cpu.prof
func BenchmarkScaleFile(b *testing.B) {
	path := os.Getenv("RF_SCALE_FILE")
	if path == "" {
		b.Skip("RF_SCALE_FILE not set")
	}
	data := readField(b, path, "instruction")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.ReportMetric(float64(greedy(NewFilter(0.7), data)), "kept")
	}
}

// greedy runs the greedy job over data in batches of 2048, as rougefilter
// does, and returns the number kept.
func greedy(f *Filter, data []string) int {
	kept := 0
	for lo := 0; lo < len(data); lo += 2048 {
		for _, r := range f.CheckBatch(data[lo:min(lo+2048, len(data))], true, 0) {
			if r.Keep {
				kept++
			}
		}
	}
	return kept
}

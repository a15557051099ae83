package selfinstruct_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alpaca-go/alpaca/pkg/llmclient"
	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
	"github.com/alpaca-go/alpaca/pkg/teachersim"
)

// benchPool is ../shared/data/alpaca_data.json when present, else random
// sentences over a synthetic vocabulary (pairwise ROUGE-L near 0).
func benchPool(b *testing.B) []selfinstruct.Task {
	if _, err := os.Stat("../../../shared/data/alpaca_data.json"); err == nil {
		p, err := selfinstruct.LoadTasks("../../../shared/data/alpaca_data.json")
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	b.Log("../shared/data/alpaca_data.json absent: synthetic pool")
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]selfinstruct.Task, 60000)
	for i := range pool {
		w := make([]string, 6+rng.IntN(10))
		for j := range w {
			w[j] = fmt.Sprintf("w%d", rng.IntN(3000))
		}
		w[0] = "Explain"
		pool[i] = selfinstruct.Task{Instruction: strings.Join(w, " ") + ".", Output: "ok"}
	}
	return pool
}

// BenchmarkGenerate generates 10K records from the simulator (sequential
// mode: every pool record once) and reports the time per 1K kept records
// for the first and the last thousand: with dedup alone they stay about
// equal (near-linear); annotations score every pool text, so they grow
// with the pool.
func BenchmarkGenerate(b *testing.B) {
	pool := benchPool(b)
	seeds, err := selfinstruct.LoadTasks(seedsFile)
	if err != nil {
		b.Fatal(err)
	}
	const target = 10000
	for _, annotate := range []bool{false, true} {
		b.Run(fmt.Sprintf("annotate=%v", annotate), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				_, url := startSim(b, teachersim.Config{Pool: pool, Sequential: true})
				client := llmclient.New(llmclient.Config{BaseURL: url, Model: "sim"})
				var marks []time.Time
				opts := selfinstruct.Options{
					Prompter: &selfinstruct.Prompter{Seeds: seeds, K: 3},
					Teacher:  client,
					Request:  llmclient.Request{MaxTokens: 3072, Temperature: 1, TopP: 1, Stop: []string{"\n20", "20."}},
					Batch:    5, Concurrency: 4, Seed: 1, Target: target,
					Dedup: true, Threshold: 0.7, Annotate: annotate, TopK: 10, Workers: 2, MaxFailures: 0.5,
					OnProgress: func(st *selfinstruct.State, _ int) {
						for len(marks) <= st.Kept/1000 {
							marks = append(marks, time.Now())
						}
					},
				}
				g := selfinstruct.NewGenerator(opts, io.Discard, nil, nil)
				b.StartTimer()
				start := time.Now()
				marks = append(marks, start)
				if err := g.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				b.ReportMetric(float64(el.Microseconds())/target, "µs/kept")
				if len(marks) > 3 {
					b.ReportMetric(marks[2].Sub(marks[1]).Seconds()*1e3, "ms/1K-first")
					b.ReportMetric(marks[len(marks)-1].Sub(marks[len(marks)-2]).Seconds()*1e3, "ms/1K-last")
				}
			}
		})
	}
}

package rougefilter

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// BenchmarkAlpacaCLI is the whole command on the Alpaca data vs the seed
// tasks (reading the JSON array, filtering, writing), output discarded.
func BenchmarkAlpacaCLI(b *testing.B) {
	data, seedFile := "../../../shared/data/alpaca_data.json", "../../../shared/data/seed_tasks.jsonl"
	if _, err := os.Stat(data); err != nil {
		b.Skip("../shared/data absent")
	}
	for _, th := range []string{"0.7", "0.5", "0.3"} {
		b.Run(th, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var errb strings.Builder
				if code := Main([]string{"--against", seedFile, "--threshold", th, data}, nil, io.Discard, &errb); code != 0 {
					b.Fatal(fmt.Sprint(code, errb.String()))
				}
			}
		})
	}
}

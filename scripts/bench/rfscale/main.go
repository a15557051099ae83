// Command rfscale writes scaling inputs for the rougefilter benchmark: N
// JSONL records {"instruction": ...}, each a base instruction with 1-3 words
// replaced and 0-2 words appended, in shuffled order. The bases are the
// first min(52002, ceil(N/12)) instructions of -alpaca (a JSON array of
// objects with an "instruction" field, e.g. ../shared/data/alpaca_data.json),
// so every record has about a dozen near-duplicates (more beyond 624K
// records); replacement words are drawn from the bases' words in proportion
// to their frequency. Without -alpaca the bases are generated. The same
// -seed and inputs give the same bytes.
//
//	go run ./scripts/bench/rfscale -alpaca ../shared/data/alpaca_data.json -n 1000000 > in.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
)

func main() {
	alpaca := flag.String("alpaca", "", "JSON array of {\"instruction\": ...} records (default: generated bases)")
	n := flag.Int("n", 100000, "records to write")
	seed := flag.Int64("seed", 1, "random seed")
	flag.Parse()
	if *n < 0 {
		fmt.Fprintln(os.Stderr, "rfscale: -n must be >= 0")
		os.Exit(2)
	}
	rng := rand.New(rand.NewSource(*seed))
	var bases [][]string
	if *alpaca != "" {
		b, err := os.ReadFile(*alpaca)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rfscale:", err)
			os.Exit(1)
		}
		var recs []struct {
			Instruction string `json:"instruction"`
		}
		if err := json.Unmarshal(b, &recs); err != nil {
			fmt.Fprintf(os.Stderr, "rfscale: %s: %v\n", *alpaca, err)
			os.Exit(1)
		}
		for _, r := range recs {
			if w := strings.Fields(r.Instruction); len(w) > 0 {
				bases = append(bases, w)
			}
		}
	} else {
		zipf := rand.NewZipf(rng, 1.1, 2, 29999)
		for i := 0; i < 52002; i++ {
			w := make([]string, 4+rng.Intn(16))
			for j := range w {
				w[j] = fmt.Sprintf("w%d", zipf.Uint64())
			}
			bases = append(bases, w)
		}
	}
	if len(bases) == 0 {
		fmt.Fprintln(os.Stderr, "rfscale: no base instructions")
		os.Exit(1)
	}
	nb := min(len(bases), (*n+11)/12)
	bases = bases[:nb]
	var words []string
	for _, b := range bases {
		words = append(words, b...)
	}
	order := rng.Perm(*n)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for _, r := range order {
		w := append([]string(nil), bases[r%nb]...)
		for k := 1 + rng.Intn(3); k > 0; k-- {
			w[rng.Intn(len(w))] = words[rng.Intn(len(words))]
		}
		for k := rng.Intn(3); k > 0; k-- {
			w = append(w, words[rng.Intn(len(words))])
		}
		if err := enc.Encode(struct {
			Instruction string `json:"instruction"`
		}{strings.Join(w, " ")}); err != nil {
			fmt.Fprintln(os.Stderr, "rfscale:", err)
			os.Exit(1)
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "rfscale:", err)
		os.Exit(1)
	}
}

// Command summary writes RUN/summary.md for `make alpaca`: the time of each
// stage, the held-out loss of the starting and the tuned model beside the
// uniform baseline, the training curve's ends, and the generated answers
// beside the reference outputs. Usage: go run ./scripts/alpaca/summary RUN
package main

import (
	"bufio"
	"encoding/json"
	"fmt"

	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stageOrder is the order of the stages in the recipe (others follow by name).
var stageOrder = []string{"data", "dedup", "split", "format-train", "format-heldout", "tokenizer",
	"tokenize-train", "tokenize-heldout", "init", "train", "plot", "eval", "generate", "weightdiff"}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: summary RUN")
		os.Exit(2)
	}
	run := os.Args[1]
	var b strings.Builder
	fmt.Fprintf(&b, "# make alpaca: %s\n\n", run)
	fmt.Fprintf(&b, "Finished %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))

	// stage times
	times := map[string]float64{}
	ents, _ := os.ReadDir(filepath.Join(run, ".times"))
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(run, ".times", e.Name()))
		if err != nil {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64); err == nil {
			times[e.Name()] = v
		}
	}
	names := make([]string, 0, len(times))
	rank := map[string]int{}
	for i, n := range stageOrder {
		rank[n] = i
	}
	for n := range times {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, oki := rank[names[i]]
		rj, okj := rank[names[j]]
		if oki != okj {
			return oki
		}
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	total := 0.0
	b.WriteString("| stage | seconds |\n|---|---:|\n")
	for _, n := range names {
		fmt.Fprintf(&b, "| %s | %.1f |\n", n, times[n])
		total += times[n]
	}
	fmt.Fprintf(&b, "| **total** | **%.1f** (%.1f min) |\n\n", total, total/60)

	// held-out loss
	type evalLine struct {
		Label      string  `json:"label"`
		Model      string  `json:"model"`
		Loss       float64 `json:"loss"`
		Targets    int     `json:"targets"`
		Examples   int     `json:"examples"`
		Perplexity float64 `json:"perplexity"`
		Uniform    float64 `json:"uniform_loss"`
	}
	var evals []evalLine
	eachLine(filepath.Join(run, "eval.json"), func(line []byte) {
		var e evalLine
		if json.Unmarshal(line, &e) == nil {
			evals = append(evals, e)
		}
	})
	if len(evals) > 0 {
		fmt.Fprintf(&b, "## Held-out loss\n\nMean cross-entropy per target token over %d held-out examples (%d target tokens); the uniform baseline is ln(vocab) = %.3f.\n\n",
			evals[0].Examples, evals[0].Targets, evals[0].Uniform)
		b.WriteString("| model | loss | perplexity | vs uniform |\n|---|---:|---:|---:|\n")
		for _, e := range evals {
			fmt.Fprintf(&b, "| %s (%s) | %.4f | %.1f | %.3f |\n", e.Label, e.Model, e.Loss, e.Perplexity, e.Loss-e.Uniform)
		}
		b.WriteString("\n")
	}

	// training curve
	type metric struct {
		Step    int     `json:"step"`
		Loss    float64 `json:"loss"`
		TokensS float64 `json:"tokens_per_s"`
		Elapsed float64 `json:"elapsed"`
		Epoch   float64 `json:"epoch"`
	}
	var ms []metric
	eachLine(filepath.Join(run, "metrics.jsonl"), func(line []byte) {
		var m metric
		if json.Unmarshal(line, &m) == nil && m.Step > 0 {
			ms = append(ms, m)
		}
	})
	if len(ms) > 0 {
		first, last := ms[0], ms[len(ms)-1]
		tail := 0.0
		k := min(10, len(ms))
		for _, m := range ms[len(ms)-k:] {
			tail += m.Loss
		}
		fmt.Fprintf(&b, "## Training\n\n%d steps (%.2f epochs) in %.0f s of training: loss %.3f at step %d, %.3f at step %d (mean of the last %d steps %.3f), %.0f tokens/s at the end. Curve: [loss.png](loss.png).\n\n",
			last.Step, last.Epoch, last.Elapsed, first.Loss, first.Step, last.Loss, last.Step, k, tail/float64(k), last.TokensS)
	}

	// answers
	n := 0
	eachLine(filepath.Join(run, "answers.jsonl"), func(line []byte) {
		var a map[string]any
		if json.Unmarshal(line, &a) != nil {
			return
		}
		if n == 0 {
			b.WriteString("## Answers to held-out instructions (greedy)\n\n")
		}
		n++
		fmt.Fprintf(&b, "### %d. %s\n\n", n, oneLine(str(a["instruction"])))
		if in := str(a["input"]); in != "" {
			fmt.Fprintf(&b, "Input: %s\n\n", oneLine(in))
		}
		fmt.Fprintf(&b, "- **tuned model**: %s\n- **reference (alpaca_data)**: %s\n\n", oneLine(str(a["completion"])), oneLine(str(a["output"])))
	})

	if _, err := os.Stat(filepath.Join(run, "diff", "weightdiff.json")); err == nil {
		b.WriteString("## Weight diff\n\n`weightdiff make` wrote diff/, `weightdiff recover` rebuilt recovered/ from the base and the diff, and `weightdiff verify` checked it against the manifest's SHA-256 of every tensor.\n")
	}
	os.Stdout.WriteString(b.String())
}

func eachLine(path string, f func([]byte)) {
	fh, err := os.Open(path)
	if err != nil {
		return
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(sc.Bytes()) > 0 {
			f(sc.Bytes())
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// oneLine keeps a table-free markdown line: newlines shown as ⏎, long text cut.
func oneLine(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", " ⏎ "))
	if r := []rune(s); len(r) > 400 {
		s = string(r[:400]) + "…"
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

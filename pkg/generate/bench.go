package generate

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/alpaca-go/alpaca/pkg/cli"
)

const benchSummary = `Measures the model's speed: prefill of --prompt-tokens random ids (one
Feed, through the GEMM), then --new-tokens greedy decoding steps of one
token. Prints one JSON object: prefill and decode tokens/s and the load
time. Used by scripts/bench/generate.sh beside llama.cpp and PyTorch.`

// BenchMain runs `generate bench`.
func BenchMain(args []string, stdout, stderr io.Writer) int {
	c := cli.NewCommand("generate bench", "--model DIR [flags]", benchSummary, "generate bench --model tuned --threads 2 --prompt-tokens 128 --new-tokens 32")
	fs := c.Flags
	var mf modelFlags
	mf.add(fs)
	np := fs.Int("prompt-tokens", 128, "prompt length `N`")
	nn := fs.Int("new-tokens", 32, "decoding steps `N`")
	seed := fs.Uint64("seed", 1, "`SEED` of the random prompt")
	err := func() error {
		if _, err := c.Parse(args); err != nil {
			return err
		}
		if *np <= 0 || *nn <= 0 {
			return cli.Usagef("--prompt-tokens and --new-tokens must be positive")
		}
		t0 := time.Now()
		m, err := mf.load()
		if err != nil {
			return err
		}
		load := time.Since(t0)
		if *np+*nn > m.MaxLen {
			return cli.Usagef("--prompt-tokens + --new-tokens = %d exceeds the model's context %d", *np+*nn, m.MaxLen)
		}
		r := rand.New(rand.NewPCG(*seed, 1))
		V := m.LM.VocabSize()
		prompt := make([]int32, *np)
		for i := range prompt {
			prompt[i] = int32(3 + r.IntN(V-3))
		}
		if m.BOS >= 0 {
			prompt[0] = m.BOS
		}
		seq, err := m.LM.NewSeq(*np + *nn)
		if err != nil {
			return err
		}
		t1 := time.Now()
		logits, err := m.LM.Feed(seq, prompt)
		if err != nil {
			return err
		}
		tok := Argmax(logits)
		prefill := time.Since(t1)
		t2 := time.Now()
		for i := 0; i < *nn; i++ {
			logits, err = m.LM.FeedBatch([]Seq{seq}, []int32{tok})
			if err != nil {
				return err
			}
			tok = Argmax(logits)
		}
		decode := time.Since(t2)
		b, _ := json.Marshal(map[string]any{
			"model": m.Dir, "threads": mf.threads, "prompt_tokens": *np, "new_tokens": *nn,
			"load_s": load.Seconds(), "prefill_s": prefill.Seconds(), "decode_s": decode.Seconds(),
			"prefill_tok_s": float64(*np) / prefill.Seconds(), "decode_tok_s": float64(*nn) / decode.Seconds(),
		})
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}()
	return c.Exit(err, stdout, stderr)
}

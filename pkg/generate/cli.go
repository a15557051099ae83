package generate

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/prompt"
	"github.com/alpaca-go/alpaca/pkg/promptfmt"
)

const batchSummary = `Completes JSONL records with a model directory from trainer (or Hugging
Face: config.json, safetensors, tokenizer.model). A record's "prompt" string
is used as is; otherwise its "instruction" (and "input") are formatted with
--template. Each output record is the input record (all fields kept, order
kept) plus "completion", "finish_reason" ("stop": EOS or a --stop string;
"length": --max-new-tokens or the context is full), "prompt_tokens" and
"completion_tokens". Sampling is greedy with --temperature 0 (the default);
each record draws from its own random stream (--seed + record number), so
the output does not depend on --batch.

Subcommands: generate chat (a terminal conversation), generate serve (an
OpenAI-compatible HTTP server). See docs/generate.md.`

const batchExample = `generate --model tuned questions.jsonl -o answers.jsonl
echo '{"instruction":"Name three primary colors."}' | generate --model tuned --max-new-tokens 64
generate chat --model tuned
generate serve --model tuned --addr 127.0.0.1:8080`

// Main runs the generate binary.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "chat":
			return ChatMain(args[1:], stdin, stdout, stderr)
		case "serve":
			return ServeMain(args[1:], stdout, stderr)
		case "bench":
			return BenchMain(args[1:], stdout, stderr)
		}
	}
	return BatchMain(args, stdin, stdout, stderr)
}

// modelFlags are the flags every subcommand shares.
type modelFlags struct {
	model   string
	threads int
	dtype   string
	adapter string
}

func (f *modelFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", "", "model `DIR` (config.json, safetensors, tokenizer.model)")
	fs.IntVar(&f.threads, "threads", runtime.NumCPU(), "compute threads (`N`)")
	fs.StringVar(&f.adapter, "adapter", "", "apply the PEFT LoRA adapter `DIR` (from trainer --lora or PEFT) to the model at load, without writing a merged model")
	fs.StringVar(&f.dtype, "dtype", "", "compute weights as `TYPE`: empty keeps the stored type (bf16/f16 converted on the fly), float32 converts at load")
}

func (f *modelFlags) load() (*Model, error) {
	if f.model == "" {
		return nil, cli.Usagef("--model DIR is required")
	}
	if f.threads <= 0 {
		return nil, cli.Usagef("--threads must be positive")
	}
	return Load(f.model, Options{Threads: f.threads, DType: f.dtype, Adapter: f.adapter})
}

// sampleFlags are the sampling flags.
type sampleFlags struct {
	temperature, topP, repPen float64
	topK, maxNew              int
	seed                      uint64
	stops                     stringList
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (f *sampleFlags) add(fs *flag.FlagSet, temp float64, maxNew int) {
	fs.Float64Var(&f.temperature, "temperature", temp, "sampling temperature `T` (0: greedy)")
	fs.Float64Var(&f.topP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to probability `P` (1: off)")
	fs.IntVar(&f.topK, "top-k", 0, "keep the `K` most likely tokens (0: off)")
	fs.Float64Var(&f.repPen, "repetition-penalty", 1, "penalty `R` on tokens already in the prompt or completion (1: off; 1.1-1.3 typical)")
	fs.Uint64Var(&f.seed, "seed", 1, "random `SEED` (same seed, same output)")
	fs.IntVar(&f.maxNew, "max-new-tokens", maxNew, "stop after `N` new tokens")
	fs.Var(&f.stops, "stop", "stop the completion before this `STRING` (repeatable)")
}

func (f *sampleFlags) params() (SampleParams, error) {
	p := SampleParams{Temperature: f.temperature, TopP: f.topP, TopK: f.topK, RepetitionPenalty: f.repPen, Seed: f.seed}
	if err := p.Check(); err != nil {
		return p, cli.Usagef("%v", err)
	}
	if f.maxNew <= 0 {
		return p, cli.Usagef("--max-new-tokens must be positive")
	}
	return p, nil
}

// BatchMain runs `generate` on JSONL records.
func BatchMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := cli.NewCommand("generate", "--model DIR [flags] [FILE...]", batchSummary, batchExample)
	fs := c.Flags
	var mf modelFlags
	var sf sampleFlags
	var cm cli.Common
	mf.add(fs)
	sf.add(fs, 0, 256)
	c.AddCommon(&cm, cli.FlagOutput|cli.FlagZstd|cli.FlagProgress)
	tmplName := fs.String("template", "alpaca", "prompt template for instruction records: built-in `NAME` or JSON FILE (see promptfmt --list-templates)")
	batch := fs.Int("batch", 4, "records decoded together (`N`)")
	err := func() error {
		files, err := c.Parse(args)
		if err != nil {
			return err
		}
		sp, err := sf.params()
		if err != nil {
			return err
		}
		if *batch <= 0 {
			return cli.Usagef("--batch must be positive")
		}
		tmpl, err := promptfmt.LoadTemplate(*tmplName)
		if err != nil {
			return err
		}
		m, err := mf.load()
		if err != nil {
			return err
		}
		ctx, cancel := cli.SignalContext()
		defer cancel()
		w, err := jsonl.CreateTo(cm.Output, cm.Zstd, stdout)
		if err != nil {
			return err
		}
		b := &batchRun{m: m, tmpl: tmpl, sp: sp, sf: &sf, batch: *batch, w: w, prog: cli.NewProgress(stderr, &cm)}
		if len(files) == 0 {
			files = []string{"-"}
		}
		for _, f := range files {
			if err = b.file(ctx, f, stdin); err != nil {
				break
			}
		}
		if err == nil {
			err = b.drain(ctx)
		}
		b.prog.Done()
		if err != nil {
			w.Abort()
			return err
		}
		if err := w.Commit(); err != nil {
			return err
		}
		if !cm.Quiet {
			fmt.Fprintf(stderr, "generate: %d records, %d prompt + %d completion tokens in %.1fs (%.1f tokens/s)\n",
				b.n, b.promptToks, b.complToks, b.prog.Elapsed().Seconds(), float64(b.complToks)/max(b.prog.Elapsed().Seconds(), 1e-9))
		}
		return nil
	}()
	return c.Exit(err, stdout, stderr)
}

type batchItem struct {
	name string
	num  int
	raw  []byte
	job  *job
}

type batchRun struct {
	m                     *Model
	tmpl                  *prompt.Template
	sp                    SampleParams
	sf                    *sampleFlags
	batch                 int
	w                     *jsonl.Writer
	prog                  *cli.Progress
	items                 []*batchItem // in input order, not yet written
	n                     int
	promptToks, complToks int
}

func (b *batchRun) file(ctx context.Context, path string, stdin io.Reader) error {
	var r *jsonl.Reader
	var err error
	if path == "-" {
		r, err = jsonl.NewReader(stdin, "stdin")
	} else {
		r, err = jsonl.Open(path)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		text, err := b.promptOf(r.Name(), rec)
		if err != nil {
			return err
		}
		b.n++
		sp := b.sp
		sp.Seed = b.sp.Seed + uint64(b.n)
		req := &Request{Prompt: b.m.EncodePrompt(text), MaxNewTokens: b.sf.maxNew, Stop: b.sf.stops, Sample: sp, Ctx: ctx}
		j, err := b.m.newJob(req)
		if err != nil {
			return jsonl.Errorf(r.Name(), rec, "%v", err)
		}
		b.items = append(b.items, &batchItem{name: r.Name(), num: rec.Num, raw: append([]byte(nil), rec.Raw...), job: j})
		for b.active() >= b.batch {
			if err := b.stepOnce(ctx); err != nil {
				return err
			}
		}
	}
}

func (b *batchRun) promptOf(name string, rec jsonl.Record) (string, error) {
	if len(rec.Raw) == 0 || rec.Raw[0] != '{' {
		return "", jsonl.Errorf(name, rec, "not a JSON object")
	}
	if p, ok, err := jsonl.GetString(rec.Raw, "prompt"); err != nil {
		return "", jsonl.Errorf(name, rec, "%v", err)
	} else if ok {
		return p, nil
	}
	ins, ok, err := jsonl.GetString(rec.Raw, "instruction")
	if err != nil {
		return "", jsonl.Errorf(name, rec, "%v", err)
	}
	if !ok {
		return "", jsonl.Errorf(name, rec, `no "prompt" or "instruction" string`)
	}
	in, _, err := jsonl.GetString(rec.Raw, "input")
	if err != nil {
		return "", jsonl.Errorf(name, rec, "%v", err)
	}
	return b.tmpl.Render(ins, in), nil
}

func (b *batchRun) active() int {
	n := 0
	for _, it := range b.items {
		if !it.job.done {
			n++
		}
	}
	return n
}

func (b *batchRun) stepOnce(ctx context.Context) error {
	var jobs []*job
	for _, it := range b.items {
		if !it.job.done {
			jobs = append(jobs, it.job)
		}
	}
	b.m.step(jobs)
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.flush()
}

// flush writes the finished records at the head of the queue.
func (b *batchRun) flush() error {
	for len(b.items) > 0 && b.items[0].job.done {
		it := b.items[0]
		b.items = b.items[1:]
		res := it.job.res
		if res.Err != nil {
			return fmt.Errorf("%s: record %d: %w", it.name, it.num, res.Err)
		}
		raw := it.raw
		var err error
		for _, kv := range []struct {
			k string
			v []byte
		}{
			{"completion", jsonl.AppendString(nil, res.Text)},
			{"finish_reason", jsonl.AppendString(nil, res.FinishReason)},
			{"prompt_tokens", fmt.Appendf(nil, "%d", res.PromptTokens)},
			{"completion_tokens", fmt.Appendf(nil, "%d", res.CompletionTokens)},
		} {
			if raw, err = jsonl.Set(raw, kv.k, kv.v); err != nil {
				return err
			}
		}
		if err := b.w.Write(raw); err != nil {
			return err
		}
		b.promptToks += res.PromptTokens
		b.complToks += res.CompletionTokens
		b.prog.Update("generate: %d records written, %d completion tokens", b.w.Count(), b.complToks)
	}
	return nil
}

func (b *batchRun) drain(ctx context.Context) error {
	for b.active() > 0 {
		if err := b.stepOnce(ctx); err != nil {
			return err
		}
	}
	return b.flush()
}

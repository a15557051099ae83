package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// EvalResult is the held-out loss of a model on a token stream: the mean
// cross-entropy over every target token (the same reduction as training's
// "tokens"), and the counts behind it.
type EvalResult struct {
	Label       string  `json:"label,omitempty"`
	Model       string  `json:"model,omitempty"`
	Data        string  `json:"data,omitempty"`
	Loss        float64 `json:"loss"`
	Perplexity  float64 `json:"perplexity"`
	Targets     int     `json:"targets"`
	Examples    int     `json:"examples"`
	UniformLoss float64 `json:"uniform_loss"` // ln(vocab): the loss of a model that knows nothing
	Seconds     float64 `json:"seconds"`
}

// Evaluate runs m over every example of d in stream order, packed into rows
// of seqLen tokens, micro rows per pass, and returns the mean cross-entropy
// per target token (accumulated in float64). Nothing is trained.
func Evaluate(ctx context.Context, m *llama.Model, d *Dataset, seqLen, micro int, progress func(done, total int)) (EvalResult, error) {
	bc := BatchConfig{SeqLen: seqLen, Packing: true, BatchSize: len(d.Examples), MicroBatch: micro}
	if err := bc.Validate(); err != nil {
		return EvalResult{}, err
	}
	start := time.Now()
	order := bc.Order(len(d.Examples), 0)
	batches := bc.MicroBatches(d.Examples, order)
	sum, n := 0.0, 0
	for i, b := range batches {
		if err := ctx.Err(); err != nil {
			return EvalResult{}, err
		}
		s, k, err := evalLoss(m, b)
		if err != nil {
			return EvalResult{}, err
		}
		sum += s
		n += k
		if progress != nil {
			progress(i+1, len(batches))
		}
	}
	if n == 0 {
		return EvalResult{}, fmt.Errorf("%s: no target tokens to evaluate", d.Name)
	}
	loss := sum / float64(n)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return EvalResult{}, fmt.Errorf("%s: the loss is %v", d.Name, loss)
	}
	return EvalResult{Loss: loss, Perplexity: math.Exp(loss), Targets: n, Examples: len(d.Examples),
		UniformLoss: math.Log(float64(m.Config.VocabSize)), Seconds: time.Since(start).Seconds()}, nil
}

const evalSummary = `Computes a model's held-out loss on a token stream written by 'tokenize':
the mean cross-entropy per target token (the tokens the stream's mask marks
as training targets), with examples packed into --seq-len rows and attention
kept inside each example, exactly as training counts it. Writes one JSON line:
{"label", "model", "data", "loss", "perplexity", "targets", "examples",
"uniform_loss" (ln vocab, the loss of a model that knows nothing), "seconds"}.`

const evalExample = `promptfmt heldout.jsonl | tokenize --model tuned/tokenizer.model -o heldout.bin
trainer eval --model base  --data heldout.bin --label base
trainer eval --model tuned --data heldout.bin --label tuned
trainer eval --model base --adapter lora-out --data heldout.bin --label lora`

// EvalMain is `trainer eval`.
func EvalMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("trainer eval", "--model DIR [--data FILE] [flags]", evalSummary, evalExample)
	var (
		model, data, label string
		adapter            string
		seqLen, micro      int
		common             cli.Common
	)
	fs := cmd.Flags
	fs.StringVar(&model, "model", "", "model `DIR` to evaluate (config.json, *.safetensors)")
	fs.StringVar(&data, "data", "", "token stream `FILE` (default stdin; zstd is detected)")
	fs.StringVar(&label, "label", "", "a `NAME` copied into the output line")
	fs.StringVar(&adapter, "adapter", "", "evaluate --model with this PEFT LoRA adapter `DIR` applied")
	fs.IntVar(&seqLen, "seq-len", 0, "row length in `N` tokens (default: the model's max_position_embeddings, at most 2048)")
	fs.IntVar(&micro, "micro-batch", 8, "`N` rows per forward pass")
	cmd.AddCommon(&common, cli.FlagOutput|cli.FlagWorkers|cli.FlagProgress)
	pos, err := cmd.Parse(args)
	if err == nil && len(pos) > 0 {
		err = cli.Usagef("unexpected argument %q (the token stream goes in --data or stdin)", pos[0])
	}
	if err == nil && model == "" {
		err = cli.Usagef("--model DIR is required")
	}
	if err == nil && (micro < 1 || seqLen < 0) {
		err = cli.Usagef("--micro-batch must be at least 1 and --seq-len not negative")
	}
	if err == nil {
		ctx, cancel := cli.SignalContext()
		defer cancel()
		err = runEval(ctx, model, adapter, data, label, common.Output, seqLen, micro, &common, stdin, stdout, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func runEval(ctx context.Context, model, adapter, data, label, out string, seqLen, micro int, common *cli.Common, stdin io.Reader, stdout, stderr io.Writer) error {
	d, err := openDataset(data, stdin)
	if err != nil {
		return err
	}
	m, err := loadForEval(model, common.Workers)
	if err != nil {
		return err
	}
	if adapter != "" {
		if _, err := m.LoadAdapter(adapter); err != nil {
			return err
		}
	}
	files, err := ReadModelFiles(model)
	if err != nil {
		return err
	}
	var fp []byte
	if tok, ok := files["tokenizer.model"]; ok {
		fp = sha256Sum(tok)
	}
	if err := d.CheckModel(m.Config.VocabSize, fp, model); err != nil {
		return err
	}
	if seqLen == 0 {
		seqLen = min(m.Config.MaxPositionEmbeddings, 2048)
	}
	if seqLen > m.Config.MaxPositionEmbeddings {
		return cli.Usagef("--seq-len %d exceeds the model's max_position_embeddings %d", seqLen, m.Config.MaxPositionEmbeddings)
	}
	prog := cli.NewProgress(stderr, common)
	r, err := Evaluate(ctx, m, d, seqLen, micro, func(done, total int) {
		prog.Update("eval %s: micro-batch %d/%d", model, done, total)
	})
	prog.Done()
	if err != nil {
		return err
	}
	r.Label, r.Model, r.Data = label, model, d.Name
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if !common.Quiet {
		fmt.Fprintf(stderr, "trainer eval: %s on %s: loss %.4f (perplexity %.2f; uniform %.4f) over %d targets of %d examples in %.1fs\n",
			model, d.Name, r.Loss, r.Perplexity, r.UniformLoss, r.Targets, r.Examples, r.Seconds)
	}
	if out == "" {
		_, err = stdout.Write(line)
		return err
	}
	return xio.AtomicWriteFile(out, line)
}

// loadForEval loads a model directory for evaluation on the CPU backend
// with the given number of threads.
func loadForEval(dir string, threads int) (*llama.Model, error) {
	if threads < 1 {
		return nil, cli.Usagef("-j %d: need at least one thread", threads)
	}
	m, err := llama.LoadWeights(dir)
	if err != nil {
		return nil, err
	}
	m.SetBackend(cpu.New(threads))
	return m, nil
}

// evalLoss is the summed cross-entropy over b's targets and their number,
// from the model's logits, in float64 (log-sum-exp with the row maximum).
func evalLoss(m *llama.Model, b *llama.Batch) (float64, int, error) {
	if err := m.Check(b); err != nil {
		return 0, 0, err
	}
	logits := m.Forward(b)
	V := m.Config.VocabSize
	sum, n := 0.0, 0
	for i, t := range b.Target {
		if t < 0 {
			continue
		}
		row := logits[i*V : (i+1)*V]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, float64(x))
		}
		z := 0.0
		for _, x := range row {
			z += math.Exp(float64(x) - mx)
		}
		sum += mx + math.Log(z) - float64(row[t])
		n++
	}
	return sum, n, nil
}

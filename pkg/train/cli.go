package train

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alpaca-go/alpaca/pkg/backend/cuda"
	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/gguf"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const trainSummary = `Fine-tunes a LLaMA-architecture model (a Hugging Face model directory) on a
token stream written by 'tokenize' (file or stdin, zstd or not), the Alpaca
way: AdamW, warmup then cosine decay, gradient accumulation to a global batch,
clipping, loss only on the stream's masked-in tokens. Examples are packed into
--seq-len rows with attention kept inside each example (or padded one per row
with --no-packing, like the original). Checkpoints (weights, optimizer state,
data position) are written atomically to OUT/checkpoint-N every --save-every
steps; --resume continues bit-exactly. The final model goes to OUT.

With --lora (or any --lora-* flag) only a LoRA adapter is trained, on the
frozen base, and OUT is a PEFT adapter directory (adapter_config.json,
adapter_model.safetensors). --eval-fraction/--eval-data with --eval-every
write the held-out loss into the metrics.

Subcommands: 'trainer init' makes a base model, 'trainer eval' computes a
held-out loss, 'trainer plot' draws a metrics file, 'trainer merge' folds a
LoRA adapter into its base, 'trainer finalize' turns the newest checkpoint
of a stopped run into a model, 'trainer export' writes GGUF for llama.cpp
(docs/generate.md). See docs/trainer.md.`

const trainExample = `trainer init --preset tiny --tokenizer tok.model --out base
tokenize --model base/tokenizer.model prompts.jsonl -o tokens.bin
trainer --model base --data tokens.bin --out tuned --epochs 3 --metrics m.jsonl
trainer --resume tuned --data tokens.bin        # after an interruption
trainer --lora --model base --data tokens.bin --out adapter --eval-fraction 0.05 --eval-every 50
trainer merge --model base --adapter adapter --out merged
trainer plot --metrics m.jsonl -o loss.png`

// Main runs the trainer binary: training, or a subcommand (init, plot).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "plot":
			return PlotMain(args[1:], stdin, stdout, stderr)
		case "eval":
			return EvalMain(args[1:], stdin, stdout, stderr)
		case "init":
			return InitMain(args[1:], stdout, stderr)
		case "merge":
			return MergeMain(args[1:], stdout, stderr)
		case "finalize":
			return FinalizeMain(args[1:], stdout, stderr)
		case "export":
			return gguf.ExportMain(args[1:], stdout, stderr)
		case "train":
			args = args[1:]
		}
	}
	return TrainMain(args, stdin, stdout, stderr)
}

type trainFlags struct {
	model, data, out, resume, metrics, device, saveDtype  string
	cudaLib                                               string
	epochs, maxSteps, warmupSteps, batchSize, batchTokens int
	microBatch, gradAccum, seqLen, saveEvery, saveLimit   int
	lr, warmupRatio, weightDecay, beta1, beta2, eps, clip float64
	noPacking, noShuffle                                  bool
	reduction, schedule                                   string
	seed                                                  int64
	common                                                cli.Common
	lora                                                  bool
	loraR, evalEvery                                      int
	loraAlpha, loraDropout, evalFraction                  float64
	loraTargets, evalData                                 string
}

// TrainMain is `trainer [train]`.
func TrainMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("trainer", "[flags] --model DIR --out DIR [--data FILE]", trainSummary, trainExample)
	def := DefaultConfig()
	var f trainFlags
	fs := cmd.Flags
	fs.StringVar(&f.model, "model", "", "model `DIR` to start from (config.json, *.safetensors, tokenizer.model)")
	fs.StringVar(&f.data, "data", "", "token stream `FILE` from tokenize (default stdin; zstd is detected)")
	fs.StringVar(&f.out, "out", "", "output `DIR`: final model, checkpoint-N/ subdirectories")
	fs.StringVar(&f.resume, "resume", "", "continue from a checkpoint `DIR` (or an output dir: its newest checkpoint)")
	fs.StringVar(&f.metrics, "metrics", "", "append one JSON line per step to `FILE`")
	fs.StringVar(&f.device, "device", "cpu", "`NAME`: cpu, or cuda (loads libalpaca_cuda.so, built by make cuda)")
	fs.StringVar(&f.cudaLib, "cuda-lib", "", "`FILE`: the CUDA backend library for --device cuda (default: $"+cuda.EnvLib+", then libalpaca_cuda.so beside the binary)")
	fs.IntVar(&f.epochs, "epochs", def.Epochs, "`N` passes over the data")
	fs.IntVar(&f.maxSteps, "max-steps", 0, "train exactly `N` optimizer steps instead of --epochs (cycling the data); the schedule spans them")
	fs.Float64Var(&f.lr, "lr", def.LR, "peak learning rate `R`")
	fs.StringVar(&f.schedule, "schedule", def.Schedule, "learning-rate `SHAPE` after the warmup: cosine, linear or constant")
	fs.Float64Var(&f.warmupRatio, "warmup-ratio", def.WarmupRatio, "linear warmup over ceil(`R` × total steps)")
	fs.IntVar(&f.warmupSteps, "warmup-steps", -1, "warmup `N` steps, overriding --warmup-ratio (-1: use the ratio)")
	fs.Float64Var(&f.weightDecay, "weight-decay", def.WeightDecay, "AdamW decoupled weight decay `R` (not applied to norms)")
	fs.Float64Var(&f.beta1, "adam-beta1", def.Beta1, "AdamW β1 `B`")
	fs.Float64Var(&f.beta2, "adam-beta2", def.Beta2, "AdamW β2 `B`")
	fs.Float64Var(&f.eps, "adam-eps", def.Eps, "AdamW ε `E`")
	fs.Float64Var(&f.clip, "max-grad-norm", def.MaxGradNorm, "clip the global gradient norm to `N` (0: no clipping)")
	fs.IntVar(&f.batchSize, "batch-size", def.Batch.BatchSize, "global batch: `N` examples per optimizer step")
	fs.IntVar(&f.batchTokens, "batch-tokens", 0, "global batch in tokens instead: examples are added while the total stays within `N`")
	fs.IntVar(&f.microBatch, "micro-batch", def.Batch.MicroBatch, "`N` rows per forward/backward pass (memory); a row is --seq-len tokens of packed examples, or one example with --no-packing")
	fs.IntVar(&f.gradAccum, "grad-accum", 0, "Hugging Face style: global batch = --micro-batch × `N` examples (instead of --batch-size)")
	fs.IntVar(&f.seqLen, "seq-len", def.Batch.SeqLen, "row length in tokens (`N`); longer examples are truncated")
	fs.BoolVar(&f.noPacking, "no-packing", false, "one example per row, padded to the longest in the micro-batch (the original Alpaca collator)")
	fs.StringVar(&f.reduction, "loss-reduction", def.LossReduction, "`KIND`: tokens = mean over every target token of the global batch; hf = mean per micro-batch, averaged over the micro-batches (HF Trainer)")
	fs.Int64Var(&f.seed, "seed", def.Batch.Seed, "shuffle seed `N`")
	fs.BoolVar(&f.noShuffle, "no-shuffle", false, "keep the stream's order in every epoch")
	fs.IntVar(&f.saveEvery, "save-every", 0, "write OUT/checkpoint-N every `N` steps (0: only the final model)")
	fs.IntVar(&f.saveLimit, "save-limit", 0, "keep only the newest `N` checkpoints (0: all)")
	fs.StringVar(&f.saveDtype, "save-dtype", "float32", "`DTYPE` of the final model's weights: float32, bfloat16 or float16 (checkpoints are always float32)")
	ld := llama.DefaultLoRAConfig()
	fs.BoolVar(&f.lora, "lora", false, "train a LoRA adapter (PEFT layout) on the frozen base instead of every weight; any --lora-* flag implies it")
	fs.IntVar(&f.loraR, "lora-r", ld.R, "LoRA rank `R`")
	fs.Float64Var(&f.loraAlpha, "lora-alpha", ld.Alpha, "LoRA alpha `A` (the update is scaled by A/R)")
	fs.Float64Var(&f.loraDropout, "lora-dropout", ld.Dropout, "dropout `P` on the LoRA branch's input")
	fs.StringVar(&f.loraTargets, "lora-targets", strings.Join(ld.Targets, ","), "`LIST` of modules to adapt: some of "+strings.Join(llama.LoRATargets, ","))
	fs.Float64Var(&f.evalFraction, "eval-fraction", 0, "hold out fraction `F` of the stream's examples (seeded by --seed) for evaluation; they are never trained on")
	fs.StringVar(&f.evalData, "eval-data", "", "held-out token stream `FILE` for evaluation (instead of --eval-fraction)")
	fs.IntVar(&f.evalEvery, "eval-every", 0, "evaluate the held-out loss every `N` steps (and after the last) into the metrics file; 0 with a held-out set: after the last step only")
	cmd.AddCommon(&f.common, cli.FlagWorkers|cli.FlagProgress)
	pos, err := cmd.Parse(args)
	if err == nil && len(pos) > 0 {
		err = cli.Usagef("unexpected argument %q (the token stream goes in --data or stdin)", pos[0])
	}
	if err == nil {
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		ctx, cancel := cli.SignalContext()
		defer cancel()
		err = runTrain(ctx, &f, set, stdin, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

// configFromFlags applies the flags to base; on resume only those given
// explicitly (set) override the checkpoint's values.
func configFromFlags(f *trainFlags, set map[string]bool, base Config, resume bool) (Config, error) {
	c := base
	use := func(name string) bool { return !resume || set[name] }
	if use("epochs") {
		c.Epochs = f.epochs
	}
	if use("max-steps") {
		c.MaxSteps = f.maxSteps
	}
	if use("lr") {
		c.LR = f.lr
	}
	if use("schedule") {
		c.Schedule = f.schedule
	}
	if use("warmup-ratio") {
		c.WarmupRatio = f.warmupRatio
	}
	if use("warmup-steps") {
		c.WarmupSteps = f.warmupSteps
	}
	if use("weight-decay") {
		c.WeightDecay = f.weightDecay
	}
	if use("adam-beta1") {
		c.Beta1 = f.beta1
	}
	if use("adam-beta2") {
		c.Beta2 = f.beta2
	}
	if use("adam-eps") {
		c.Eps = f.eps
	}
	if use("max-grad-norm") {
		c.MaxGradNorm = f.clip
	}
	if use("loss-reduction") {
		c.LossReduction = f.reduction
	}
	if use("seq-len") {
		c.Batch.SeqLen = f.seqLen
	}
	if use("no-packing") {
		c.Batch.Packing = !f.noPacking
	}
	if use("no-shuffle") {
		c.Batch.Shuffle = !f.noShuffle
	}
	if use("seed") {
		c.Batch.Seed = f.seed
	}
	if use("micro-batch") {
		c.Batch.MicroBatch = f.microBatch
	}
	if use("eval-fraction") {
		c.EvalFraction = f.evalFraction
	}
	if f.lora || set["lora-r"] || set["lora-alpha"] || set["lora-dropout"] || set["lora-targets"] {
		if c.LoRA == nil {
			c.LoRA = &llama.LoRAConfig{R: f.loraR, Alpha: f.loraAlpha, Dropout: f.loraDropout, Targets: sortedTargets(parseTargets(f.loraTargets))}
		} else {
			l := *c.LoRA
			if set["lora-r"] {
				l.R = f.loraR
			}
			if set["lora-alpha"] {
				l.Alpha = f.loraAlpha
			}
			if set["lora-dropout"] {
				l.Dropout = f.loraDropout
			}
			if set["lora-targets"] {
				l.Targets = sortedTargets(parseTargets(f.loraTargets))
			}
			c.LoRA = &l
		}
	}
	if set["batch-tokens"] && (set["batch-size"] || set["grad-accum"]) {
		return c, cli.Usagef("--batch-tokens and --batch-size/--grad-accum both set the global batch; give one")
	}
	if set["grad-accum"] && set["batch-size"] {
		if f.batchSize != f.microBatch*f.gradAccum {
			return c, cli.Usagef("--batch-size %d is not --micro-batch %d × --grad-accum %d; give --batch-size or --grad-accum", f.batchSize, f.microBatch, f.gradAccum)
		}
	}
	switch {
	case set["grad-accum"]:
		if f.gradAccum < 1 {
			return c, cli.Usagef("--grad-accum %d must be at least 1", f.gradAccum)
		}
		c.Batch.BatchSize, c.Batch.BatchTokens = c.Batch.MicroBatch*f.gradAccum, 0
	case set["batch-tokens"]:
		c.Batch.BatchSize, c.Batch.BatchTokens = 0, f.batchTokens
		if f.batchTokens < 1 {
			return c, cli.Usagef("--batch-tokens %d must be positive", f.batchTokens)
		}
	case use("batch-size"):
		c.Batch.BatchSize, c.Batch.BatchTokens = f.batchSize, 0
	}
	if err := c.Validate(); err != nil {
		return c, cli.Usagef("%v", err)
	}
	return c, nil
}

func runTrain(ctx context.Context, f *trainFlags, set map[string]bool, stdin io.Reader, stderr io.Writer) (retErr error) {
	defer func() {
		// A failed CUDA operation panics (the Backend interface has no
		// error returns): one line instead of a stack trace.
		if r := recover(); r != nil {
			ce, ok := r.(*cuda.Error)
			if !ok {
				panic(r)
			}
			retErr = fmt.Errorf("--device cuda: %s; the run stopped (--resume continues from the last checkpoint)", ce.Msg)
		}
	}()
	cuda.SetLibraryPath(f.cudaLib)
	if !deviceKnown(f.device) {
		return cli.Usagef("--device %q: want one of %s", f.device, strings.Join(deviceNames(), ", "))
	}
	if err := deviceAvailable(f.device); err != nil {
		return err
	}
	if f.saveEvery < 0 || f.saveLimit < 0 {
		return cli.Usagef("--save-every and --save-limit must not be negative")
	}
	dt, derr := parseWeightsDType("--save-dtype", f.saveDtype)
	if derr != nil {
		return derr
	}
	f.saveDtype = dt
	quiet := f.common.Quiet
	logf := func(format string, args ...any) {
		if !quiet {
			fmt.Fprintf(stderr, "trainer: "+format+"\n", args...)
		}
	}

	// Where the model comes from: a fresh start or a checkpoint.
	var (
		ck     string
		st     *State
		cfg    Config
		err    error
		source = f.model
	)
	if f.resume != "" {
		if ck, err = FindCheckpoint(f.resume); err != nil {
			return err
		}
		if st, err = ReadState(ck); err != nil {
			return err
		}
		if st.Finished {
			logf("%s: training already finished (step %d of %d); nothing to do", ck, st.Step, st.TotalSteps)
			return nil
		}
		if f.out == "" {
			if strings.HasPrefix(filepath.Base(ck), "checkpoint-") {
				f.out = filepath.Dir(ck)
			} else {
				return cli.Usagef("--out is required with --resume %s", f.resume)
			}
		}
		source = st.Model.Source
		if f.model != "" && filepath.Clean(f.model) != filepath.Clean(source) {
			return cli.Usagef("--resume continues the checkpoint's model (trained from %s); leave out --model %s", source, f.model)
		}
		if cfg, err = configFromFlags(f, set, st.Config, true); err != nil {
			return err
		}
		// Checkpointing goes on as the run was started, unless changed.
		if !set["save-every"] {
			f.saveEvery = st.Saving.Every
		}
		if !set["save-limit"] {
			f.saveLimit = st.Saving.Limit
		}
	} else {
		if f.model == "" {
			return cli.Usagef("--model DIR is required (or --resume DIR)")
		}
		if f.out == "" {
			return cli.Usagef("--out DIR is required")
		}
		if err := checkFreshOut(f.out); err != nil {
			return err
		}
		if cfg, err = configFromFlags(f, set, DefaultConfig(), false); err != nil {
			return err
		}
	}
	modelDir := f.model
	if ck != "" {
		modelDir = ck
	}

	// Data first: it is cheap to check and its errors are the common ones.
	data, err := openDataset(f.data, stdin)
	if err != nil {
		return err
	}
	if st != nil && st.Threads > 0 && f.common.Workers != st.Threads {
		if set["workers"] || set["j"] {
			logf("note: the checkpoint ran with -j %d; with -j %d the continued run is not bit-identical to an uninterrupted one", st.Threads, f.common.Workers)
		} else {
			f.common.Workers = st.Threads // same split of the work, same bits
		}
	}
	if f.common.Workers < 1 {
		return cli.Usagef("-j %d: need at least one thread", f.common.Workers)
	}
	be, err := openDevice(f.device, f.common.Workers)
	if err != nil {
		return err
	}
	if err := checkDeviceMemory(be, modelDir, cfg.Batch.MicroBatch, cfg.Batch.SeqLen, logf); err != nil {
		return err
	}
	var (
		m  *llama.Model
		tm Model
		lr *llama.LoRA
	)
	if cfg.LoRA != nil {
		// the frozen base as stored (bf16/f16 stay so), the adapter fresh
		// or from the checkpoint
		if m, err = llama.OpenOn(source, be); err != nil {
			return err
		}
		defer m.Close()
		if ck != "" {
			if lr, err = m.LoadAdapter(ck); err != nil {
				return err
			}
			if got := lr.Config(); got.R != cfg.LoRA.R || got.Alpha != cfg.LoRA.Alpha || !slices.Equal(got.Targets, sortedTargets(cfg.LoRA.Targets)) {
				return fmt.Errorf("%s: the adapter (r %d, alpha %v, %v) is not the checkpoint's configuration", ck, got.R, got.Alpha, got.Targets)
			}
		} else if lr, err = m.AddLoRA(*cfg.LoRA, cfg.Batch.Seed); err != nil {
			return err
		}
		if err := lr.SetDropout(cfg.LoRA.Dropout); err != nil {
			return err
		}
		lr.SetDropoutSeed(cfg.Batch.Seed)
		lr.BaseModel = source
		tm = loraModel{m}
	} else {
		if m, err = llama.LoadOn(modelDir, be); err != nil {
			return err
		}
		tm = m
	}
	files, err := ReadModelFiles(modelDir)
	if err != nil {
		return err
	}
	m.TokenizerPath = "" // the tokenizer is written from memory (a pruned checkpoint may hold the file)
	var fp []byte
	if tok, ok := files["tokenizer.model"]; ok {
		fp = sha256Sum(tok)
	} else {
		logf("note: %s has no tokenizer.model; the stream's tokenizer cannot be checked", modelDir)
	}
	if err := data.CheckModel(m.Config.VocabSize, fp, modelDir); err != nil {
		return err
	}
	if cfg.Batch.SeqLen > m.Config.MaxPositionEmbeddings {
		return cli.Usagef("--seq-len %d exceeds the model's max_position_embeddings %d", cfg.Batch.SeqLen, m.Config.MaxPositionEmbeddings)
	}

	// The held-out set.
	var (
		evalSet *Dataset
		evalSt  *EvalState
	)
	if st != nil && st.Eval != nil {
		if !set["eval-every"] {
			f.evalEvery = st.Eval.Every
		}
		if f.evalData == "" {
			f.evalData = st.Eval.Data
		}
	}
	if f.evalEvery < 0 {
		return cli.Usagef("--eval-every %d is negative", f.evalEvery)
	}
	switch {
	case cfg.EvalFraction > 0 && f.evalData != "":
		return cli.Usagef("--eval-fraction and --eval-data both give a held-out set; give one")
	case cfg.EvalFraction > 0:
		if data, evalSet, evalSt, err = SplitEval(data, cfg.EvalFraction, cfg.Batch.Seed); err != nil {
			return cli.Usagef("%v", err)
		}
	case f.evalData != "":
		if evalSet, err = openDataset(f.evalData, nil); err != nil {
			return err
		}
		if err := evalSet.CheckModel(m.Config.VocabSize, fp, modelDir); err != nil {
			return err
		}
		evalSt = &EvalState{Data: f.evalData, HeldOut: len(evalSet.Examples)}
	case f.evalEvery > 0:
		return cli.Usagef("--eval-every needs a held-out set: --eval-fraction F or --eval-data FILE")
	}
	if evalSt != nil {
		evalSt.Every = f.evalEvery
	}

	tr, err := New(cfg, tm, data)
	if err != nil {
		return err
	}
	tr.Source, tr.Files, tr.Threads, tr.LoRA, tr.Eval = source, files, f.common.Workers, lr, evalSt
	tr.Saving = Saving{Every: f.saveEvery, Limit: f.saveLimit}
	// What killed runs left in OUT (hidden temporary checkpoint, final
	// and pruned directories) goes now; a live writer's is locked.
	xio.CleanStaleDir(f.out)
	if st != nil {
		if err := tr.Restore(ck, st); err != nil {
			return err
		}
		logf("resuming %s at step %d of %d (epoch %d)", ck, tr.Step, tr.TotalSteps, tr.Epoch+1)
	}
	truncated := 0
	for i := range data.Examples {
		if len(data.Examples[i].IDs) > cfg.Batch.SeqLen {
			truncated++
		}
	}
	logf("%d examples, %d tokens (%d targets) from %s; %d params; %d steps, warmup %d",
		len(data.Examples), data.Tokens, data.Targets, data.Name, numParams(tm), tr.TotalSteps, tr.Sched.Warmup)
	if lr != nil {
		c := lr.Config()
		logf("LoRA r %d, alpha %g, dropout %g on %s: %d trainable parameters; the base (%d) is frozen",
			c.R, c.Alpha, c.Dropout, strings.Join(c.Targets, ","), numParams(tm), numParams(m))
	}
	if evalSet != nil {
		logf("held out: %d examples (%d targets) from %s", len(evalSet.Examples), evalSet.Targets, evalSet.Name)
	}
	if truncated > 0 {
		logf("note: %d examples are longer than --seq-len %d and are truncated", truncated, cfg.Batch.SeqLen)
	}

	var metrics *Metrics
	if f.metrics != "" {
		if metrics, err = OpenMetrics(f.metrics, tr.Step); err != nil {
			return err
		}
		defer metrics.Close()
	}
	prog := cli.NewProgress(stderr, &f.common)
	defer prog.Done()
	lastGood := ""
	if ck != "" {
		lastGood = ck
	}
	last := StepResult{Loss: math.NaN()}
	if st != nil {
		last.Loss = st.LastLoss
	}
	startSteps, started := tr.Step, time.Now()
	saveCk := func() error {
		dir := filepath.Join(f.out, fmt.Sprintf("checkpoint-%d", tr.Step))
		if err := tr.SaveDir(dir, "float32", true, last.Loss); err != nil {
			return fmt.Errorf("saving checkpoint %s: %w", dir, err)
		}
		lastGood = dir
		return PruneCheckpoints(f.out, f.saveLimit)
	}
	runEvalAt := func(step int) error {
		prog.Update("step %d/%d  evaluating %d held-out examples", step, tr.TotalSteps, len(evalSet.Examples))
		er, err := Evaluate(ctx, m, evalSet, cfg.Batch.SeqLen, cfg.Batch.MicroBatch, nil)
		if err != nil {
			return fmt.Errorf("step %d: evaluation: %w", step, err)
		}
		logf("step %d: eval loss %.4f (perplexity %.2f) over %d targets", step, er.Loss, er.Perplexity, er.Targets)
		if metrics != nil {
			return metrics.WriteEval(step, er)
		}
		return nil
	}
	hooks := Hooks{
		OnStep: func(r StepResult) error {
			last = r
			if metrics != nil {
				if err := metrics.Write(r); err != nil {
					return err
				}
			}
			if evalSet != nil && (tr.Done() || (f.evalEvery > 0 && r.Step%f.evalEvery == 0)) {
				if err := runEvalAt(r.Step); err != nil {
					return err
				}
			}
			rate := float64(tr.Step-startSteps) / time.Since(started).Seconds()
			eta := time.Duration(float64(tr.TotalSteps-tr.Step) / rate * float64(time.Second))
			prog.Update("step %d/%d  epoch %.2f  loss %.4f  lr %.3g  |g| %.3f  %.0f tok/s  eta %s",
				r.Step, tr.TotalSteps, r.Epoch, r.Loss, r.LR, r.GradNorm, r.TokensPerS, eta.Round(time.Second))
			return nil
		},
		ShouldSave: func(step int) bool { return f.saveEvery > 0 && step%f.saveEvery == 0 },
		Save:       saveCk,
		OnInterrupt: func() error {
			prog.Done()
			if tr.Step == startSteps {
				return nil
			}
			if err := saveCk(); err != nil {
				return err
			}
			logf("interrupted at step %d; checkpoint %s (continue with --resume %s)", tr.Step, lastGood, f.out)
			return nil
		},
	}
	tr.OnMicro = func(done, total int) {
		prog.Update("step %d/%d  micro-batch %d/%d  last loss %.4f", tr.Step+1, tr.TotalSteps, done+1, total, last.Loss)
	}
	err = tr.Run(ctx, hooks)
	prog.Done()
	var nf *NonFiniteError
	switch {
	case errors.As(err, &nf):
		where := "no checkpoint was written yet"
		if lastGood != "" {
			where = "last good checkpoint: " + lastGood
		}
		return fmt.Errorf("%v; stopped without saving this step (%s); try a lower --lr", err, where)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case err != nil:
		return err
	}
	if lr != nil {
		f.saveDtype = "float32" // an adapter is saved in fp32
	}
	// With checkpoints on, the last one is the run's end (marked finished,
	// with the optimizer state, so the run can be told apart from an
	// interrupted one and extended); the final model holds only the model.
	if f.saveEvery > 0 && !strings.HasSuffix(lastGood, fmt.Sprintf("checkpoint-%d", tr.Step)) {
		if err := saveCk(); err != nil {
			return err
		}
	}
	if err := tr.SaveFinal(f.out, f.saveDtype); err != nil {
		return fmt.Errorf("saving the model to %s: %w", f.out, err)
	}
	el := time.Since(started).Seconds()
	logf("done: %d steps in %s (%.0f tokens/s), final loss %.4f; model in %s",
		tr.Step-startSteps, time.Duration(el*float64(time.Second)).Round(time.Millisecond),
		float64(tr.TokensSeen)/math.Max(tr.Elapsed, 1e-9), last.Loss, f.out)
	return nil
}

// checkFreshOut refuses to start a new run over an earlier one.
func checkFreshOut(out string) error {
	if _, err := os.Stat(filepath.Join(out, StateFile)); err == nil || HasFinal(out) {
		return cli.Usagef("%s already holds a trained model; choose another --out (or --resume %s to continue an unfinished run)", out, out)
	}
	if cks, err := ListCheckpoints(out); err == nil && len(cks) > 0 {
		return cli.Usagef("%s already holds checkpoints (%s); continue with --resume %s or choose another --out", out, filepath.Base(cks[len(cks)-1]), out)
	}
	return nil
}

func numParams(m Model) int {
	n := 0
	for _, p := range m.Params() {
		n += p.N
	}
	return n
}

// parseWeightsDType normalises a --save-dtype/--dtype value to the name
// llama.Save takes (float32, bfloat16 or float16); anything else is a usage
// error naming flag.
func parseWeightsDType(flag, s string) (string, error) {
	switch strings.ToLower(s) {
	case "float32", "f32", "fp32":
		return "float32", nil
	case "bfloat16", "bf16":
		return "bfloat16", nil
	case "float16", "f16", "fp16":
		return "float16", nil
	}
	return "", cli.Usagef("%s %q: want float32, bfloat16 or float16", flag, s)
}

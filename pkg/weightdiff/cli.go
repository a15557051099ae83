package weightdiff

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

const topSummary = `Makes, applies and checks weight diffs, compatible with Stanford Alpaca's
weight_diff.py (tuned − raw per tensor in float32; recover adds the raw model
back after Alpaca's pad-token embedding resize; naive sum check), plus an xor
mode that recovers any dtype bit-exactly. Reads safetensors (single or sharded)
and PyTorch .bin checkpoints (restricted pickle reader: never runs code).
Tensors stream in chunks, in parallel, so memory stays small whatever the size;
output directories appear only when complete.

Subcommands:
  make      --raw DIR --tuned DIR --out DIR [--mode diff|xor] [--dtype F32]
  recover   --raw DIR --diff DIR --out DIR [--expect-sum X]
  verify    --model DIR (--diff DIR | --expect-sum X)`

const topExample = `weightdiff make --raw llama-7b --tuned alpaca-7b --out alpaca-7b-diff
weightdiff recover --raw llama-7b --diff alpaca-7b-diff --out alpaca-7b
weightdiff recover --raw llama-7b --diff alpaca-7b-wdiff --out alpaca-7b --expect-sum 50637.1836
weightdiff verify --model alpaca-7b --diff alpaca-7b-diff`

// Main runs the weightdiff command line.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	top := cli.NewCommand("weightdiff", "make|recover|verify [flags]", topSummary, topExample)
	if len(args) == 0 {
		return top.Exit(cli.Usagef("missing subcommand (make, recover or verify)"), stdout, stderr)
	}
	switch args[0] {
	case "make":
		return runMake(args[1:], stdout, stderr)
	case "recover":
		return runRecover(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "-h", "--help", "-help", "help":
		return top.Exit(flag.ErrHelp, stdout, stderr)
	}
	return top.Exit(cli.Usagef("unknown subcommand %q (want make, recover or verify)", args[0]), stdout, stderr)
}

// sizeFlag parses sizes such as 5GB, 2GiB, 500MB or plain bytes.
type sizeFlag struct{ n *int64 }

func (s sizeFlag) String() string {
	if s.n == nil {
		return ""
	}
	return strconv.FormatInt(*s.n, 10)
}

func (s sizeFlag) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s.n = n
	return nil
}

// ParseSize reads 5GB, 2GiB, 500MB, 64KiB or a byte count (0 = no limit).
func ParseSize(v string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(v))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(u, suf.s) {
			u, mult = strings.TrimSuffix(u, suf.s), suf.m
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(u), 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q (want e.g. 5GB, 2GiB, 500MB)", v)
	}
	return int64(f * float64(mult)), nil
}

type expectFlag struct {
	v   *float64
	set *bool
}

func (e expectFlag) String() string { return "" }
func (e expectFlag) Set(s string) error {
	if strings.EqualFold(s, "alpaca-7b") {
		*e.v, *e.set = AlpacaSum, true
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("bad number %q", s)
	}
	*e.v, *e.set = f, true
	return nil
}

type common struct {
	cli.Common
	opt Options
}

func addCommon(cmd *cli.Command, c *common, out bool) {
	cmd.AddCommon(&c.Common, cli.FlagWorkers|cli.FlagProgress)
	if out {
		c.opt.ShardBytes = 5e9
		cmd.Flags.Var(sizeFlag{&c.opt.ShardBytes}, "shard-size", "largest output `SIZE` per safetensors file (5GB default as Hugging Face; 0 = one file)")
		cmd.Flags.BoolVar(&c.opt.Force, "force", false, "replace --out if it exists and is not empty")
	}
}

func (c *common) setup(stderr io.Writer) *cli.Progress {
	c.opt.Workers = c.Workers
	if !c.Quiet {
		c.opt.Log = stderr
	}
	p := cli.NewProgress(stderr, &c.Common)
	c.opt.Progress = func(done, total int64) {
		el := p.Elapsed().Seconds()
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		p.Update("weightdiff: %.1f%% (%s of %s, %s/s)", pct, human(done), human(total), human(int64(float64(done)/max(el, 1e-3))))
	}
	return p
}

func human(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// need reports the first missing required flag; pairs are name, value.
// interrupted turns a cancellation into a message saying what was left.
func interrupted(err error) error {
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted: nothing was written to --out (the partial output was removed)")
	}
	return err
}

func need(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return cli.Usagef("--%s is required", pairs[i])
		}
	}
	return nil
}

func runMake(args []string, stdout, stderr io.Writer) int {
	var c common
	var mo MakeOptions
	var dtype string
	cmd := cli.NewCommand("weightdiff make", "--raw DIR --tuned DIR --out DIR [flags]",
		`Writes the diff of a fine-tuned model against its base model into --out:
diff mode (default): tuned − raw per tensor computed in float32 as Alpaca's
weight_diff.py does, stored as safetensors (--dtype), with the tuned config and
tokenizer files and weightdiff.json (per-tensor SHA-256, the expected recovery
hash where float32 rounding makes it differ, the sum check value).
xor mode: the tuned bytes XOR the raw bytes, zstd-compressed per chunk, in
diff.xor: recovers every dtype bit-exactly and is usually much smaller.
When the tuned embeddings have more rows (Alpaca's added [PAD] token), the raw
model is first resized the way Alpaca does (new rows = mean of the others).`,
		"weightdiff make --raw llama-7b --tuned alpaca-7b --out alpaca-diff\nweightdiff make --raw base --tuned tuned --out diff --mode xor")
	cmd.Flags.StringVar(&mo.Raw, "raw", "", "base model `DIR` (safetensors or pytorch_model.bin, sharded or not)")
	cmd.Flags.StringVar(&mo.Tuned, "tuned", "", "fine-tuned model `DIR`")
	cmd.Flags.StringVar(&mo.Out, "out", "", "diff `DIR` to write")
	cmd.Flags.StringVar(&mo.Mode, "mode", "diff", "`MODE`: diff (float32 arithmetic, Alpaca-compatible) or xor (bit-exact, compressed)")
	cmd.Flags.StringVar(&dtype, "dtype", "F32", "stored `DTYPE` of the differences in diff mode: F32 (exact), BF16 or F16 (half the size, lossy)")
	addCommon(cmd, &c, true)
	_, err := cmd.Parse(args)
	if err == nil {
		err = need("raw", mo.Raw, "tuned", mo.Tuned, "out", mo.Out)
	}
	if err == nil && mo.Mode != "diff" && mo.Mode != "xor" {
		err = cli.Usagef("--mode %q: want diff or xor", mo.Mode)
	}
	if err == nil {
		if mo.DType, err = safetensors.ParseDType(dtype); err == nil && !mo.DType.IsFloat() {
			err = cli.Usagef("--dtype %s is not a float type", dtype)
		} else if err != nil {
			err = cli.Usagef("--dtype: %v", err)
		}
	}
	if err != nil {
		return cmd.Exit(err, stdout, stderr)
	}
	p := c.setup(stderr)
	mo.Options = c.opt
	ctx, cancel := cli.SignalContext()
	defer cancel()
	start := time.Now()
	s, err := Make(ctx, mo)
	err = interrupted(err)
	p.Done()
	if err != nil {
		return cmd.Exit(err, stdout, stderr)
	}
	if !c.Quiet {
		el := time.Since(start).Seconds()
		fmt.Fprintf(stderr, "weightdiff make: %d tensors, %.3g parameters, %s diff (%s mode) in %.1fs; sum %.4f (torch-style %.4f)",
			s.Tensors, float64(s.Params), human(s.Bytes), mo.Mode, el, s.Sum, s.SumTorch)
		if s.Inexact > 0 {
			fmt.Fprintf(stderr, "; %d elements (%.2g%%) will recover 1-ulp off as with weight_diff.py (recorded in the manifest)", s.Inexact, 100*float64(s.Inexact)/float64(max(s.Params, 1)))
		}
		fmt.Fprintln(stderr)
	}
	return 0
}

func runRecover(args []string, stdout, stderr io.Writer) int {
	var c common
	var ro RecoverOptions
	var dtype string
	cmd := cli.NewCommand("weightdiff recover", "--raw DIR --diff DIR --out DIR [flags]",
		`Recovers the fine-tuned model from the base model and a diff: ours (diff or
xor mode, checked tensor by tensor against the manifest's SHA-256) or the
original's (e.g. tatsu-lab/alpaca-7b-wdiff, pytorch_model-*.bin; checked with
--expect-sum). When the diff has more embedding rows than the raw model, the
raw model gets Alpaca's pad-token resize first. Writes safetensors plus the
config and tokenizer files into --out (created only when everything passed).`,
		"weightdiff recover --raw llama-7b --diff alpaca-7b-wdiff --out alpaca-7b --expect-sum alpaca-7b")
	cmd.Flags.StringVar(&ro.Raw, "raw", "", "base model `DIR`")
	cmd.Flags.StringVar(&ro.Diff, "diff", "", "diff `DIR` (from weightdiff make, or Alpaca's weight_diff.py)")
	cmd.Flags.StringVar(&ro.Out, "out", "", "recovered model `DIR` to write")
	cmd.Flags.Var(expectFlag{&ro.ExpectSum, &ro.HaveExpect}, "expect-sum", "check the sum of all recovered parameters against `X` (Alpaca-7B: 50637.1836, or the word alpaca-7b)")
	cmd.Flags.Float64Var(&ro.SumTol, "sum-tol", 1e-2, "absolute tolerance of the sum check (`TOL`; the original's atol)")
	cmd.Flags.StringVar(&dtype, "dtype", "", "write the recovered weights as `DTYPE` (default: the tuned dtype recorded in the manifest, else the diff's)")
	addCommon(cmd, &c, true)
	_, err := cmd.Parse(args)
	if err == nil {
		err = need("raw", ro.Raw, "diff", ro.Diff, "out", ro.Out)
	}
	if err == nil && dtype != "" {
		if ro.DType, err = safetensors.ParseDType(dtype); err != nil {
			err = cli.Usagef("--dtype: %v", err)
		}
	}
	if err != nil {
		return cmd.Exit(err, stdout, stderr)
	}
	p := c.setup(stderr)
	ro.Options = c.opt
	ctx, cancel := cli.SignalContext()
	defer cancel()
	start := time.Now()
	s, err := Recover(ctx, ro)
	err = interrupted(err)
	p.Done()
	if err != nil {
		return cmd.Exit(err, stdout, stderr)
	}
	if !c.Quiet {
		el := time.Since(start).Seconds()
		fmt.Fprintf(stderr, "weightdiff recover: %d tensors, %.3g parameters, %s written in %.1fs (%.2f GB/s); sum %.4f (torch-style %.4f)",
			s.Tensors, float64(s.Params), human(s.Bytes), el, float64(s.Bytes)/1e9/max(el, 1e-9), s.Sum, s.SumTorch)
		switch {
		case s.Checked > 0:
			fmt.Fprintf(stderr, "; %d/%d tensors match the manifest bit for bit", s.Checked, s.Tensors)
		case ro.HaveExpect:
			fmt.Fprintf(stderr, "; sum check passed (%.4f ± %g)", ro.ExpectSum, ro.tol())
		}
		fmt.Fprintln(stderr)
	}
	return 0
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	var c common
	var vo VerifyOptions
	var diffDir string
	cmd := cli.NewCommand("weightdiff verify", "--model DIR (--diff DIR | --expect-sum X) [flags]",
		`Checks a model directory against a diff's manifest (every tensor's SHA-256,
either the tuned bytes or their expected arithmetic recovery, and the sum), or
against the original's naive check value with --expect-sum.`,
		"weightdiff verify --model alpaca-7b --diff alpaca-7b-diff\nweightdiff verify --model alpaca-7b --expect-sum 50637.1836")
	cmd.Flags.StringVar(&vo.Model, "model", "", "model `DIR` to check")
	cmd.Flags.StringVar(&diffDir, "diff", "", "diff `DIR` whose weightdiff.json describes the tuned model")
	cmd.Flags.Var(expectFlag{&vo.ExpectSum, &vo.HaveExpect}, "expect-sum", "expected sum of all parameters (`X`)")
	cmd.Flags.Float64Var(&vo.SumTol, "sum-tol", 1e-2, "absolute tolerance of the sum check (`TOL`)")
	addCommon(cmd, &c, false)
	_, err := cmd.Parse(args)
	if err == nil {
		err = need("model", vo.Model)
	}
	if err == nil && diffDir == "" && !vo.HaveExpect {
		err = cli.Usagef("give --diff DIR or --expect-sum X")
	}
	if err != nil {
		return cmd.Exit(err, stdout, stderr)
	}
	if diffDir != "" {
		vo.Manifest, err = ReadManifest(diffDir)
		if err == nil && vo.Manifest == nil {
			err = fmt.Errorf("%s: no %s", diffDir, ManifestName)
		}
		if err != nil {
			return cmd.Exit(err, stdout, stderr)
		}
	}
	p := c.setup(stderr)
	vo.Options = c.opt
	ctx, cancel := cli.SignalContext()
	defer cancel()
	s, err := Verify(ctx, vo)
	err = interrupted(err)
	p.Done()
	if err != nil {
		return cmd.Exit(err, stdout, stderr)
	}
	fmt.Fprintf(stdout, "ok: %d tensors, %.0f parameters, sum %.4f (torch-style %.4f)", s.Tensors, float64(s.Params), s.Sum, s.SumTorch)
	if s.Checked > 0 {
		fmt.Fprintf(stdout, ", %d tensors match the manifest's SHA-256", s.Checked)
	}
	fmt.Fprintln(stdout)
	return 0
}

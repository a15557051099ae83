package train

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const finalizeSummary = `Turns a training checkpoint into a final model directory, for a run that
was stopped early (or killed) and is not to be continued: the newest
checkpoint-N of DIR (or DIR itself when it is a checkpoint) is written to
--out (default: DIR, when DIR is a run's output directory) holding only what
a model needs: config.json, the weights (in --dtype), the tokenizer files and
generation_config.json. For a LoRA run the adapter (adapter_config.json,
adapter_model.safetensors) is written instead. The checkpoints are left as
they are, so 'trainer --resume DIR' can still continue the run later.`

const finalizeExample = `trainer --model base --data train.bin --out tuned --save-every 50   # killed at step 130
trainer finalize tuned                     # tuned/ now holds checkpoint-100 as a model
generate --model tuned --template alpaca_legacy < questions.jsonl`

// FinalizeMain is `trainer finalize`.
func FinalizeMain(args []string, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("trainer finalize", "DIR [--out DIR] [--dtype TYPE]", finalizeSummary, finalizeExample)
	var (
		out, dtype string
		quiet      bool
	)
	cmd.Flags.StringVar(&out, "out", "", "write the model to `DIR` (default: the run directory)")
	cmd.Flags.StringVar(&dtype, "dtype", "float32", "weights as `TYPE`: float32, bfloat16 or float16")
	cmd.Flags.BoolVar(&quiet, "quiet", false, "no summary on stderr")
	pos, err := cmd.Parse(args)
	if err == nil && len(pos) != 1 {
		err = cli.Usagef("want one run directory or checkpoint (got %d arguments)", len(pos))
	}
	if err == nil {
		dtype, err = parseWeightsDType("--dtype", dtype)
	}
	if err == nil {
		err = finalize(pos[0], out, dtype, quiet, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func finalize(dir, out, dtype string, quiet bool, stderr io.Writer) error {
	ck, err := FindCheckpoint(dir)
	if err != nil {
		return err
	}
	st, err := ReadState(ck)
	if err != nil {
		return err
	}
	if out == "" {
		if !strings.HasPrefix(filepath.Base(ck), "checkpoint-") || filepath.Clean(ck) == filepath.Clean(dir) {
			return cli.Usagef("%s is a checkpoint, not a run directory: give --out DIR", dir)
		}
		out = dir
	}
	if HasFinal(out) {
		return cli.Usagef("%s already holds a final model; give another --out", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	td, err := xio.CreateDir(filepath.Join(out, "final"))
	if err != nil {
		return err
	}
	defer td.Abort()
	lora := false
	if _, err := os.Stat(filepath.Join(ck, llama.AdapterConfigFile)); err == nil {
		lora = true
		for _, n := range []string{llama.AdapterConfigFile, llama.AdapterWeightsFile} {
			b, err := xio.ReadRegular(filepath.Join(ck, n), 1<<40)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(td.Path, n), b, 0o644); err != nil {
				return err
			}
		}
	} else {
		m, err := llama.LoadWeights(ck)
		if err != nil {
			return err
		}
		err = m.Save(td.Path, dtype)
		m.Close()
		if err != nil {
			return err
		}
		files, err := ReadModelFiles(ck)
		if err != nil {
			return err
		}
		if err := writeMissing(td.Path, files); err != nil {
			return err
		}
		if err := writeGenerationConfig(td.Path); err != nil {
			return err
		}
	}
	if err := moveFinal(td.Path, out); err != nil {
		return err
	}
	if !quiet {
		what := "model (" + dtype + ")"
		if lora {
			what = "LoRA adapter"
		}
		fmt.Fprintf(stderr, "trainer finalize: %s (step %d of %d, loss %.4f) written to %s as a %s\n", ck, st.Step, st.TotalSteps, st.LastLoss, out, what)
	}
	return nil
}

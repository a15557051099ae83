package train

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend/cpu"
	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/llama"
	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

const mergeSummary = `Folds a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors,
from 'trainer --lora' or from PEFT itself) into its base model: every
targeted weight becomes W + (lora_alpha/r)·B·A, computed in float32, and the
merged model is written as a Hugging Face model directory in the base's
dtype (or --dtype), with the base's tokenizer files.`

const mergeExample = `trainer --lora --model base --data tokens.bin --out adapter
trainer merge --model base --adapter adapter --out merged
weightdiff make --raw base --tuned merged --out diff`

// MergeMain is `trainer merge`.
func MergeMain(args []string, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("trainer merge", "--model BASE --adapter DIR --out DIR", mergeSummary, mergeExample)
	var (
		model, adapter, out, dtype string
		common                     cli.Common
	)
	fs := cmd.Flags
	fs.StringVar(&model, "model", "", "base model `DIR` the adapter was trained on")
	fs.StringVar(&adapter, "adapter", "", "PEFT adapter `DIR`")
	fs.StringVar(&out, "out", "", "merged model `DIR` (replaced atomically)")
	fs.StringVar(&dtype, "dtype", "", "`DTYPE` of the merged weights: float32, bfloat16, float16 (default: the base's)")
	cmd.AddCommon(&common, cli.FlagWorkers|cli.FlagProgress)
	pos, err := cmd.Parse(args)
	switch {
	case err != nil:
	case len(pos) > 0:
		err = cli.Usagef("unexpected argument %q", pos[0])
	case model == "" || adapter == "" || out == "":
		err = cli.Usagef("--model, --adapter and --out are required")
	case filepath.Clean(out) == filepath.Clean(model) || filepath.Clean(out) == filepath.Clean(adapter):
		err = cli.Usagef("--out %s would replace an input; choose another directory", out)
	case common.Workers < 1:
		err = cli.Usagef("-j %d: need at least one thread", common.Workers)
	}
	if err == nil {
		err = runMerge(model, adapter, out, dtype, common.Workers, common.Quiet, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func runMerge(model, adapter, out, dtype string, threads int, quiet bool, stderr io.Writer) error {
	if dtype == "" {
		var err error
		if dtype, err = baseDType(model); err != nil {
			return err
		}
	}
	m, err := llama.LoadWeights(model)
	if err != nil {
		return err
	}
	m.SetBackend(cpu.New(threads))
	l, err := m.LoadAdapter(adapter)
	if err != nil {
		return err
	}
	c := l.Config()
	if err := m.MergeLoRA(); err != nil {
		return err
	}
	if err := m.Save(out, dtype); err != nil {
		return err
	}
	files, err := ReadModelFiles(model)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, name), files[name], 0o644); err != nil {
			return err
		}
	}
	if !quiet {
		fmt.Fprintf(stderr, "trainer merge: %s + %s (r %d, alpha %g, %s) -> %s (%s)\n",
			model, adapter, c.R, c.Alpha, strings.Join(c.Targets, ","), out, dtype)
	}
	return nil
}

// baseDType is the dtype of a model directory's embedding weights.
func baseDType(dir string) (string, error) {
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		return "", err
	}
	defer st.Close()
	info, ok := st.Info("model.embed_tokens.weight")
	if !ok {
		return "", fmt.Errorf("%s: no model.embed_tokens.weight", dir)
	}
	switch info.DType {
	case safetensors.F16, safetensors.BF16, safetensors.F32:
		return info.DType.TorchName(), nil
	}
	return "float32", nil
}

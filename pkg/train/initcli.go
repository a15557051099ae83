package train

import (
	"fmt"
	"io"
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/llama"
)

// InitMain is `trainer init`: it writes a new model directory, either
// randomly initialised from a config/preset or converted from an existing
// model (--model), optionally with Alpaca's pad-token resize. It returns
// the exit code.
func InitMain(args []string, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("trainer init", "(--config FILE | --preset tiny|small | --model DIR) --out DIR [flags]",
		`Write a LlamaForCausalLM model directory (config.json, model.safetensors,
tokenizer.model) with weights initialised like Hugging Face does:
normal(0, initializer_range) for embeddings and linear layers, 1 for norms.
--model DIR starts from an existing model instead (to resize or convert it).
--add-pad-token applies Alpaca's resize: one extra token whose embedding
and lm_head rows are the mean of the existing rows (vocab 32000 -> 32001).`,
		`trainer init --preset tiny --tokenizer out/tokenizer.model --out out/base --seed 1
trainer init --model llama-7b --add-pad-token --out llama-7b-pad --dtype bfloat16
trainer --model out/base --data tokens.bin --out out/tuned`)
	var (
		configPath, preset, out, tokPath, model, dtype string
		seed                                           int64
		addPad, quiet                                  bool
		vocab                                          int
	)
	fs := cmd.Flags
	fs.StringVar(&configPath, "config", "", "Hugging Face config.json `FILE` describing the model")
	fs.StringVar(&preset, "preset", "", "built-in config `NAME`: tiny (~0.5M params + embeddings) or small (~3M + embeddings)")
	fs.StringVar(&model, "model", "", "start from this model `DIR` instead of random weights")
	fs.StringVar(&out, "out", "", "output model `DIR` (replaced atomically)")
	fs.StringVar(&tokPath, "tokenizer", "", "sentencepiece `FILE` copied in as tokenizer.model; sets the preset's vocab size")
	fs.Int64Var(&seed, "seed", 0, "random seed `N` for the initialisation")
	fs.BoolVar(&addPad, "add-pad-token", false, "add Alpaca's [PAD] token: one more vocab row = mean of the others")
	fs.StringVar(&dtype, "dtype", "float32", "weight `DTYPE` written: float32, float16 or bfloat16")
	fs.IntVar(&vocab, "vocab", 0, "vocabulary size `N` for --preset without --tokenizer (default 32000)")
	fs.BoolVar(&quiet, "quiet", false, "no summary on stderr")
	pos, err := cmd.Parse(args)
	if err == nil && len(pos) > 0 {
		err = cli.Usagef("unexpected argument %q", pos[0])
	}
	if err == nil {
		n := 0
		for _, s := range []string{configPath, preset, model} {
			if s != "" {
				n++
			}
		}
		switch {
		case n != 1:
			err = cli.Usagef("give exactly one of --config, --preset, --model")
		case out == "":
			err = cli.Usagef("--out DIR is required")
		case vocab != 0 && preset == "":
			err = cli.Usagef("--vocab only applies to --preset")
		}
	}
	if err == nil {
		err = runInit(configPath, preset, model, out, tokPath, dtype, seed, vocab, addPad, quiet, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func runInit(configPath, preset, model, out, tokPath, dtype string, seed int64, vocab int, addPad, quiet bool, stderr io.Writer) error {
	pieces := 0
	if tokPath != "" {
		var err error
		if pieces, err = CountSentencePieces(tokPath); err != nil {
			return err
		}
	}
	var m *llama.Model
	switch {
	case model != "":
		var err error
		if m, err = llama.LoadWeights(model); err != nil {
			return err
		}
	default:
		var cfg llama.Config
		var err error
		if preset != "" {
			v := vocab
			if pieces > 0 {
				if vocab != 0 && vocab != pieces {
					return cli.Usagef("--vocab %d but %s has %d pieces", vocab, tokPath, pieces)
				}
				v = pieces
			}
			cfg, err = llama.Preset(preset, v)
			if err != nil {
				return cli.Usagef("%v", err)
			}
		} else if cfg, err = llama.LoadConfig(configPath); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return cli.Usagef("%v", err)
		}
		if err := cfg.CheckMemory(true); err != nil {
			return err
		}
		m = llama.New(cfg, seed)
	}
	if tokPath != "" {
		m.TokenizerPath = tokPath
	}
	if pieces > 0 && pieces != m.Config.VocabSize {
		return fmt.Errorf("tokenizer %s has %d pieces but the model's vocab_size is %d", tokPath, pieces, m.Config.VocabSize)
	}
	if m.TokenizerPath == "" && !quiet {
		fmt.Fprintf(stderr, "trainer init: note: no tokenizer given (--tokenizer); the model directory will have no tokenizer.model\n")
	}
	padID := -1
	if addPad {
		padID = m.AddPadToken()
	}
	if err := m.Save(out, dtype); err != nil {
		return err
	}
	if !quiet {
		c := m.Config
		fmt.Fprintf(stderr, "trainer init: wrote %s: %d params (%d layers, hidden %d, heads %d/%d kv, vocab %d, tied %v), %s",
			out, m.NumParams(), c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize, c.TieWordEmbeddings, dtype)
		if padID >= 0 {
			fmt.Fprintf(stderr, ", pad token id %d", padID)
		}
		fmt.Fprintln(stderr)
	}
	return nil
}

// CountSentencePieces returns the number of pieces in a sentencepiece
// ModelProto file (field 1, repeated SentencePiece), i.e. its vocabulary
// size, by walking the protobuf wire format.
func CountSentencePieces(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	bad := fmt.Errorf("%s: not a sentencepiece model (bad protobuf)", path)
	varint := func() (uint64, bool) {
		var v uint64
		for s := uint(0); s < 64; s += 7 {
			if len(b) == 0 {
				return 0, false
			}
			c := b[0]
			b = b[1:]
			v |= uint64(c&0x7f) << s
			if c < 0x80 {
				return v, true
			}
		}
		return 0, false
	}
	n := 0
	for len(b) > 0 {
		tag, ok := varint()
		if !ok || tag>>3 == 0 {
			return 0, bad
		}
		switch tag & 7 {
		case 0:
			if _, ok := varint(); !ok {
				return 0, bad
			}
		case 1:
			if len(b) < 8 {
				return 0, bad
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return 0, bad
			}
			b = b[4:]
		case 2:
			l, ok := varint()
			if !ok || l > uint64(len(b)) {
				return 0, bad
			}
			b = b[l:]
			if tag>>3 == 1 {
				n++
			}
		default:
			return 0, bad
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: sentencepiece model has no pieces", path)
	}
	return n, nil
}

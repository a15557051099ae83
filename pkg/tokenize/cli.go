// Package tokenize is the `tokenize` stage: promptfmt records (prompt,
// completion) become a binary token stream (pkg/tokstream) with Alpaca's
// train.py semantics, and the subcommands around it: --decode, stats,
// train, encode, decode.
package tokenize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// Main runs the tokenize command with args (without the program name).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "train":
			return mainTrain(args[1:], stdin, stdout, stderr)
		case "stats":
			return mainStats(args[1:], stdin, stdout, stderr)
		case "encode":
			return mainEncode(args[1:], stdin, stdout, stderr)
		case "decode":
			return mainDecodeIDs(args[1:], stdin, stdout, stderr)
		}
	}
	return mainStage(args, stdin, stdout, stderr)
}

const stageSummary = `Turns promptfmt records ({"prompt", "completion"}, unknown fields ignored)
into a binary token stream for trainer, with Alpaca train.py semantics:
ids = BOS + encode(prompt + completion) + EOS; the first len(BOS + encode(prompt))
positions are masked out of the loss; examples longer than --max-len are cut
(losing their EOS, as in the original) or dropped with --drop-long.
Encoding is identical to spm_encode with the given SentencePiece BPE model.

Subcommands:
  tokenize --decode STREAM      the stream back to JSONL text (prompt/completion split by the mask)
  tokenize stats STREAM         counts, lengths, masked share, truncations
  tokenize train --vocab-size N --input CORPUS -o tokenizer.model
  tokenize encode --model M [FILE]   text lines to ids (as spm_encode --output_format=id)
  tokenize decode --model M [FILE]   id lines to text (as spm_decode --input_format=id)

The tokenizer is --model PATH or, when absent, $ALPACA_TOKENIZER.`

const stageExample = `promptfmt alpaca_data.json | tokenize --model tokenizer.model -o train.tok
tokenize --decode train.tok --model tokenizer.model | head -n 2
tokenize stats train.tok`

type stageFlags struct {
	common          cli.Common
	model           string
	maxLen          int
	dropLong        bool
	decode          bool
	separate        bool
	noBOS, noEOS    bool
	promptField     string
	completionField string
	showIDs         bool
}

func mainStage(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("tokenize", "[flags] [FILE...]", stageSummary, stageExample)
	var f stageFlags
	cmd.AddCommon(&f.common, cli.FlagsStream)
	fs := cmd.Flags
	fs.StringVar(&f.model, "model", "", "the SentencePiece BPE tokenizer (.model) at `PATH` (default $"+EnvTokenizer+")")
	fs.IntVar(&f.maxLen, "max-len", 512, "keep at most `N` tokens per example, BOS and EOS included (0 = no limit)")
	fs.BoolVar(&f.dropLong, "drop-long", false, "drop examples longer than --max-len instead of truncating them")
	fs.BoolVar(&f.decode, "decode", false, "read a token stream and write it back as JSONL text (needs the tokenizer)")
	fs.BoolVar(&f.separate, "separate", false, "encode prompt and completion separately (completion without a dummy prefix)\nso the mask boundary falls exactly between them; default: jointly, as train.py")
	fs.BoolVar(&f.noBOS, "no-bos", false, "do not start examples with BOS")
	fs.BoolVar(&f.noEOS, "no-eos", false, "do not end examples with EOS")
	fs.StringVar(&f.promptField, "prompt-field", "prompt", "`NAME` of the input field holding the prompt")
	fs.StringVar(&f.completionField, "completion-field", "completion", "`NAME` of the input field holding the completion")
	fs.BoolVar(&f.showIDs, "ids", false, "with --decode: also write the ids and the mask")
	files, err := cmd.Parse(args)
	if err == nil {
		if f.maxLen < 0 {
			err = cli.Usagef("--max-len %d must be >= 0", f.maxLen)
		} else if f.maxLen > 0 && f.maxLen < 2 && !f.decode {
			err = cli.Usagef("--max-len %d leaves no room for BOS and a token", f.maxLen)
		}
	}
	if err == nil {
		ctx, cancel := cli.SignalContext()
		defer cancel()
		if f.decode {
			err = runDecodeStream(ctx, &f, files, stdin, stdout, stderr)
		} else {
			err = runStage(ctx, &f, files, stdin, stdout, stderr)
		}
	}
	return cmd.Exit(err, stdout, stderr)
}

// Stats counts what the stage did.
type Stats struct {
	Examples    int64 // written
	Tokens      int64
	Targets     int64
	Truncated   int64
	Dropped     int64
	Skipped     int64 // bad records with --skip-bad
	FullyMasked int64 // written examples without any target
}

type item struct {
	rec  jsonl.Record
	name string
}

type encoded struct {
	ids       []int32
	promptLen int
	truncated bool
	dropped   bool
	bad       error
}

// Options are the semantics of Tokenize.
type Options struct {
	MaxLen          int // 0 = no limit
	DropLong        bool
	Separate        bool
	BOS, EOS        bool
	PromptField     string
	CompletionField string
}

// EncodeExample applies the stage's semantics to one prompt/completion pair:
// it returns the ids and the number of leading positions masked out.
func EncodeExample(e *sentencepiece.Encoder, m *sentencepiece.Model, o *Options, prompt, completion string, buf []int32) (ids []int32, promptLen int, truncated, dropped bool) {
	ids = buf[:0]
	if o.BOS && m.BosID() >= 0 {
		ids = append(ids, m.BosID())
	}
	head := len(ids)
	if o.Separate {
		ids = e.Append(ids, prompt)
		promptLen = len(ids)
		ids = e.AppendContinuation(ids, completion)
	} else {
		ids = e.Append(ids, prompt)
		promptLen = len(ids)
		ids = e.Append(ids[:head], prompt+completion)
	}
	if o.EOS && m.EosID() >= 0 {
		ids = append(ids, m.EosID())
	}
	if o.MaxLen > 0 && len(ids) > o.MaxLen {
		if o.DropLong {
			return ids, promptLen, false, true
		}
		ids = ids[:o.MaxLen]
		truncated = true
	}
	if promptLen > len(ids) {
		promptLen = len(ids)
	}
	return ids, promptLen, truncated, false
}

func runStage(ctx context.Context, f *stageFlags, files []string, stdin io.Reader, stdout, stderr io.Writer) error {
	m, modelPath, err := loadModel(f.model)
	if err != nil {
		return err
	}
	opts := &Options{MaxLen: f.maxLen, DropLong: f.dropLong, Separate: f.separate, BOS: !f.noBOS, EOS: !f.noEOS,
		PromptField: f.promptField, CompletionField: f.completionField}
	out, err := openOutput(f.common.Output, f.common.Zstd, stdout)
	if err != nil {
		return err
	}
	semantics := "joint"
	if f.separate {
		semantics = "separate"
	}
	hdr := tokstream.Header{VocabSize: m.VocabSize(), BOS: m.BosID(), EOS: m.EosID(), Pad: m.PadID(), Fingerprint: m.Fingerprint,
		Meta: map[string]any{
			"tokenizer":      filepath.Base(modelPath),
			"tokenizer_path": absOrSame(modelPath),
			"max_len":        f.maxLen,
			"drop_long":      f.dropLong,
			"semantics":      semantics,
			"bos":            opts.BOS && m.BosID() >= 0,
			"eos":            opts.EOS && m.EosID() >= 0,
			"fields":         []string{f.promptField, f.completionField},
			"mask":           "prompt",
		}}
	w, err := tokstream.NewWriter(out, hdr)
	if err != nil {
		out.abort()
		return err
	}
	encs := make([]*sentencepiece.Encoder, f.common.Workers)
	for i := range encs {
		encs[i] = m.NewEncoder()
	}
	in := newJSONLInputs(files, stdin)
	defer in.Close()
	var st Stats
	prog := cli.NewProgress(stderr, &f.common)
	var warned int
	err = ordered(ctx, f.common.Workers, 256,
		func() (item, bool, error) {
			rec, name, err := in.Next()
			if errors.Is(err, io.EOF) {
				return item{}, false, nil
			}
			if err != nil {
				return item{}, false, err
			}
			return item{rec, name}, true, nil
		},
		func(wk int, items []item, res []encoded) error {
			e := encs[wk]
			for i, it := range items {
				p, ok1, err1 := jsonl.GetText(it.rec.Raw, opts.PromptField)
				c, ok2, err2 := jsonl.GetText(it.rec.Raw, opts.CompletionField)
				var bad error
				switch {
				case err1 != nil:
					bad = jsonl.Errorf(it.name, it.rec, "%v", err1)
				case err2 != nil:
					bad = jsonl.Errorf(it.name, it.rec, "%v", err2)
				case !ok1:
					bad = jsonl.Errorf(it.name, it.rec, "no %q field (is this promptfmt output? see --prompt-field)", opts.PromptField)
				case !ok2:
					bad = jsonl.Errorf(it.name, it.rec, "no %q field (see --completion-field)", opts.CompletionField)
				}
				if bad != nil {
					if !f.common.SkipBad {
						return bad
					}
					res[i].bad = bad
					continue
				}
				ids, pl, tr, dr := EncodeExample(e, m, opts, p, c, nil)
				res[i] = encoded{ids: ids, promptLen: pl, truncated: tr, dropped: dr}
			}
			return nil
		},
		func(res []encoded, _ []item) error {
			for _, r := range res {
				switch {
				case r.bad != nil:
					st.Skipped++
					if warned < 5 && !f.common.Quiet {
						fmt.Fprintf(stderr, "tokenize: skipped: %v\n", r.bad)
						warned++
					}
					continue
				case r.dropped:
					st.Dropped++
					continue
				}
				mask := make([]bool, len(r.ids))
				for i := r.promptLen; i < len(mask); i++ {
					mask[i] = true
				}
				if err := w.Write(tokstream.Example{IDs: r.ids, Mask: mask}); err != nil {
					return err
				}
				st.Examples++
				st.Tokens += int64(len(r.ids))
				st.Targets += int64(len(r.ids) - r.promptLen)
				if r.truncated {
					st.Truncated++
				}
				if r.promptLen == len(r.ids) {
					st.FullyMasked++
				}
			}
			prog.Update("tokenize: %d examples, %d tokens", st.Examples, st.Tokens)
			return nil
		})
	prog.Done()
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
		return err
	}
	if !f.common.Quiet {
		el := prog.Elapsed()
		masked := 0.0
		if st.Tokens > 0 {
			masked = 100 * float64(st.Tokens-st.Targets) / float64(st.Tokens)
		}
		fmt.Fprintf(stderr, "tokenize: %d examples, %d tokens (%.1f%% masked), %d truncated to %d, %d dropped, %d fully masked, %d skipped; %.2fs (%.0f tokens/s)\n",
			st.Examples, st.Tokens, masked, st.Truncated, f.maxLen, st.Dropped, st.FullyMasked, st.Skipped, el.Seconds(), float64(st.Tokens)/max(el.Seconds(), 1e-9))
	}
	return nil
}

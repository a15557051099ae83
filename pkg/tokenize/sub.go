package tokenize

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
)

type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// isJSONName reports whether a file name looks like JSON/JSONL.
func isJSONName(p string) bool {
	p = strings.TrimSuffix(p, ".zst")
	return strings.HasSuffix(p, ".jsonl") || strings.HasSuffix(p, ".json")
}

// textOf picks the text of a JSON record: the --field list joined, else
// prompt+completion, else "text", else Alpaca's instruction/input/output.
func textOf(raw []byte, fields []string) (string, bool, error) {
	if len(fields) > 0 {
		var sb strings.Builder
		any := false
		for _, f := range fields {
			s, ok, err := jsonl.GetText(raw, f)
			if err != nil {
				return "", false, err
			}
			any = any || ok
			sb.WriteString(s)
		}
		return sb.String(), any, nil
	}
	for _, set := range [][]string{{"prompt", "completion"}, {"text"}, {"instruction", "input", "output"}} {
		var parts []string
		any := false
		for _, f := range set {
			s, ok, err := jsonl.GetText(raw, f)
			if err != nil {
				return "", false, err
			}
			if ok {
				any = true
				if s != "" {
					parts = append(parts, s)
				}
			}
		}
		if any {
			sep := ""
			if len(set) == 3 {
				sep = "\n"
			}
			return strings.Join(parts, sep), true, nil
		}
	}
	return "", false, nil
}

// eachText calls fn for every text of the inputs: a line of a text file,
// or the text of a record of a JSON/JSONL file (--jsonl forces JSON).
func eachText(files []string, stdin io.Reader, forceJSON bool, fields []string, skipBad bool, fn func(string) error) (skipped int, err error) {
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		if forceJSON || isJSONName(f) {
			in := newJSONLInputs([]string{f}, stdin)
			for {
				rec, name, err := in.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					in.Close()
					return skipped, err
				}
				s, ok, err := textOf(rec.Raw, fields)
				if err == nil && !ok {
					err = fmt.Errorf("no text field (prompt/completion, text, instruction/input/output; or pass --field)")
				}
				if err != nil {
					if skipBad {
						skipped++
						continue
					}
					in.Close()
					return skipped, jsonl.Errorf(name, rec, "%v", err)
				}
				if err := fn(s); err != nil {
					in.Close()
					return skipped, err
				}
			}
			in.Close()
			continue
		}
		in, err := openInput(f, stdin)
		if err != nil {
			return skipped, err
		}
		for {
			line, rerr := in.ReadString('\n')
			if len(line) > 0 {
				line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
				if err := fn(line); err != nil {
					in.Close()
					return skipped, err
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				in.Close()
				return skipped, fmt.Errorf("%s: %v", in.Name, rerr)
			}
		}
		in.Close()
	}
	return skipped, nil
}

func mainTrain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("tokenize train", "--vocab-size N [flags] [--input FILE]... [FILE...]",
		`Trains a SentencePiece BPE tokenizer with LLaMA's settings (identity
normalizer, dummy prefix, spaces kept, byte fallback, <unk>=0 <s>=1 </s>=2,
digits split) and writes the .model file; spm_encode loads it and encodes
the same as tokenize. Inputs: text files (one sentence per line) or
JSON/JSONL files (by name or --jsonl; the text of a record is --field, else
prompt+completion, else text, else instruction/input/output).`,
		`tokenize train --vocab-size 8000 --input corpus.txt -o tokenizer.model
promptfmt data.json | tokenize train --jsonl --vocab-size 4000 -o tok.model`)
	var cm cli.Common
	cmd.AddCommon(&cm, cli.FlagOutput|cli.FlagSkipBad|cli.FlagProgress)
	fs := cmd.Flags
	vocab := fs.Int("vocab-size", 0, "`N` pieces in all, specials and the 256 byte pieces included (required)")
	var inputs, fields, user stringList
	fs.Var(&inputs, "input", "training corpus `FILE` (repeatable; also positional)")
	fs.Var(&fields, "field", "`NAME` of a JSON field holding the text (repeatable; joined in order)")
	fs.Var(&user, "user-defined", "a `SYMBOL` that is always one piece (repeatable)")
	forceJSON := fs.Bool("jsonl", false, "read the inputs as JSON/JSONL whatever their names")
	coverage := fs.Float64("character-coverage", 0.9995, "share `F` of character occurrences covered by character pieces; the rarest fall back to bytes")
	maxPiece := fs.Int("max-piece-length", 16, "longest piece in `N` characters")
	splitDigits := fs.Bool("split-digits", true, "every digit is its own piece, as in LLaMA")
	noBytes := fs.Bool("no-byte-fallback", false, "unknown characters become <unk> instead of <0xNN> byte pieces")
	files, err := cmd.Parse(args)
	if err == nil && *vocab <= 0 {
		err = cli.Usagef("--vocab-size N is required (e.g. 8000; LLaMA has 32000)")
	}
	if err == nil && cm.Output == "" && cli.IsTerminal(stdout) {
		err = cli.Usagef("the .model is binary: pass -o FILE (or redirect stdout)")
	}
	if err == nil {
		files = append([]string(inputs), files...)
		err = runTrain(files, stdin, stdout, stderr, &cm, *forceJSON, fields, sentencepiece.TrainOptions{
			VocabSize: *vocab, CharacterCoverage: *coverage, MaxPieceLength: *maxPiece, SplitDigits: *splitDigits,
			NoByteFallback: *noBytes, UserDefined: user,
		})
	}
	return cmd.Exit(err, stdout, stderr)
}

func runTrain(files []string, stdin io.Reader, stdout, stderr io.Writer, cm *cli.Common, forceJSON bool, fields []string, opts sentencepiece.TrainOptions) error {
	tr, err := sentencepiece.NewTrainer(opts)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	prog := cli.NewProgress(stderr, cm)
	skipped, err := eachText(files, stdin, forceJSON, fields, cm.SkipBad, func(s string) error {
		tr.Add(s)
		prog.Update("tokenize train: %d sentences, %d distinct words", tr.Sentences(), tr.Words())
		return nil
	})
	if err != nil {
		return err
	}
	model, err := tr.Train()
	prog.Done()
	if err != nil {
		return err
	}
	m, err := sentencepiece.Parse(model)
	if err != nil {
		return fmt.Errorf("internal error: the trained model does not load: %v", err)
	}
	out, err := openOutput(cm.Output, false, stdout)
	if err != nil {
		return err
	}
	if _, err := out.Write(model); err != nil {
		out.abort()
		return err
	}
	if err := out.commit(); err != nil {
		out.abort()
		return err
	}
	if !cm.Quiet {
		note := ""
		if m.VocabSize() < opts.VocabSize {
			note = fmt.Sprintf(" (asked for %d: the corpus has no more pairs to merge)", opts.VocabSize)
		}
		fmt.Fprintf(stderr, "tokenize train: %d pieces%s from %d sentences (%d distinct words, %d skipped) in %.2fs\n",
			m.VocabSize(), note, tr.Sentences(), tr.Words(), skipped, prog.Elapsed().Seconds())
	}
	return nil
}

func mainEncode(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("tokenize encode", "--model PATH [flags] [FILE...]",
		`Encodes any corpus with the tokenizer. Text input: one line in, one line of
space-separated ids out, exactly as spm_encode --output_format=id (or pieces,
as --output_format=piece). With --field NAME the input is JSONL and each
record gets an "ids" array (unknown fields kept).`,
		`tokenize encode --model tokenizer.model corpus.txt > corpus.ids
tokenize encode --model tokenizer.model --field text docs.jsonl | head`)
	var cm cli.Common
	cmd.AddCommon(&cm, cli.FlagsStream)
	model := cmd.Flags.String("model", "", "the SentencePiece BPE tokenizer (.model) at `PATH` (default $"+EnvTokenizer+")")
	format := cmd.Flags.String("output-format", "id", "`FORMAT`: id or piece")
	field := cmd.Flags.String("field", "", "JSONL mode: encode field `NAME` of each record and add \"ids\"")
	files, err := cmd.Parse(args)
	if err == nil && *format != "id" && *format != "piece" {
		err = cli.Usagef("--output-format %q: want id or piece", *format)
	}
	if err == nil {
		ctx, cancel := cli.SignalContext()
		defer cancel()
		err = runEncode(ctx, files, stdin, stdout, &cm, *model, *format == "piece", *field)
	}
	return cmd.Exit(err, stdout, stderr)
}

// lineSource yields the lines of several inputs (without "\n"; a "\r" is
// kept, as spm_encode keeps it).
type lineSource struct {
	files []string
	stdin io.Reader
	i     int
	cur   *bufio.Reader
	close func() error
}

func (l *lineSource) next() (string, bool, error) {
	for {
		if l.cur == nil {
			if l.i >= len(l.files) {
				return "", false, nil
			}
			in, err := openInput(l.files[l.i], l.stdin)
			if err != nil {
				return "", false, err
			}
			l.i++
			l.cur, l.close = in.Reader, in.Close
		}
		line, err := l.cur.ReadString('\n')
		if err != nil && err != io.EOF {
			return "", false, err
		}
		if err == io.EOF {
			l.close()
			l.cur = nil
			if line == "" {
				continue
			}
			return line, true, nil
		}
		return line[:len(line)-1], true, nil
	}
}

func runEncode(ctx context.Context, files []string, stdin io.Reader, stdout io.Writer, cm *cli.Common, modelFlag string, pieces bool, field string) error {
	m, _, err := loadModel(modelFlag)
	if err != nil {
		return err
	}
	out, err := openOutput(cm.Output, cm.Zstd, stdout)
	if err != nil {
		return err
	}
	encs := make([]*sentencepiece.Encoder, cm.Workers)
	for i := range encs {
		encs[i] = m.NewEncoder()
	}
	w := newLineWriter(out)
	format := func(dst []byte, ids []int32) []byte {
		for i, id := range ids {
			if i > 0 {
				dst = append(dst, ' ')
			}
			if pieces {
				dst = append(dst, m.IDToPiece(id)...)
			} else {
				dst = strconv.AppendInt(dst, int64(id), 10)
			}
		}
		return dst
	}
	if field == "" {
		if len(files) == 0 {
			files = []string{"-"}
		}
		src := &lineSource{files: files, stdin: stdin}
		err = ordered(ctx, cm.Workers, 512, src.next,
			func(wk int, in []string, out [][]byte) error {
				var ids []int32
				for i, s := range in {
					ids = encs[wk].Append(ids[:0], s)
					out[i] = append(format(nil, ids), '\n')
				}
				return nil
			},
			func(res [][]byte, _ []string) error {
				for _, b := range res {
					if err := w.write(b); err != nil {
						return err
					}
				}
				return nil
			})
	} else {
		in := newJSONLInputs(files, stdin)
		defer in.Close()
		var skipped int
		err = ordered(ctx, cm.Workers, 256,
			func() (item, bool, error) {
				rec, name, err := in.Next()
				if errors.Is(err, io.EOF) {
					return item{}, false, nil
				}
				return item{rec, name}, err == nil, err
			},
			func(wk int, items []item, out [][]byte) error {
				var ids []int32
				for i, it := range items {
					s, ok, err := jsonl.GetText(it.rec.Raw, field)
					if err == nil && !ok {
						err = fmt.Errorf("no %q field", field)
					}
					if err != nil {
						if cm.SkipBad {
							continue
						}
						return jsonl.Errorf(it.name, it.rec, "%v", err)
					}
					ids = encs[wk].Append(ids[:0], s)
					var arr []byte
					if pieces {
						arr = append(arr, '[')
						for j, id := range ids {
							if j > 0 {
								arr = append(arr, ',')
							}
							arr = jsonl.AppendString(arr, m.IDToPiece(id))
						}
						arr = append(arr, ']')
					} else {
						arr = append([]byte{'['}, format(nil, ids)...)
						for j := range arr {
							if arr[j] == ' ' {
								arr[j] = ','
							}
						}
						arr = append(arr, ']')
					}
					key := "ids"
					if pieces {
						key = "pieces"
					}
					rec, err := jsonl.Set(it.rec.Raw, key, arr)
					if err != nil {
						return jsonl.Errorf(it.name, it.rec, "%v", err)
					}
					out[i] = append(rec, '\n')
				}
				return nil
			},
			func(res [][]byte, _ []item) error {
				for _, b := range res {
					if b == nil {
						skipped++
						continue
					}
					if err := w.write(b); err != nil {
						return err
					}
				}
				return nil
			})
	}
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
	}
	return err
}

func mainDecodeIDs(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("tokenize decode", "--model PATH [flags] [FILE...]",
		`Decodes lines of space-separated ids back to text, exactly as
spm_decode --input_format=id.`,
		`tokenize encode --model tok.model corpus.txt | tokenize decode --model tok.model`)
	var cm cli.Common
	cmd.AddCommon(&cm, cli.FlagOutput|cli.FlagZstd)
	model := cmd.Flags.String("model", "", "the SentencePiece BPE tokenizer (.model) at `PATH` (default $"+EnvTokenizer+")")
	files, err := cmd.Parse(args)
	if err == nil {
		err = runDecodeIDs(files, stdin, stdout, &cm, *model)
	}
	return cmd.Exit(err, stdout, stderr)
}

func runDecodeIDs(files []string, stdin io.Reader, stdout io.Writer, cm *cli.Common, modelFlag string) error {
	m, _, err := loadModel(modelFlag)
	if err != nil {
		return err
	}
	out, err := openOutput(cm.Output, cm.Zstd, stdout)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	w := newLineWriter(out)
	src := &lineSource{files: files, stdin: stdin}
	var ids []int32
	var buf []byte
	for n := 1; ; n++ {
		line, ok, err := src.next()
		if err != nil || !ok {
			if err == nil {
				err = w.flush()
			}
			if err == nil {
				err = out.commit()
			}
			if err != nil {
				out.abort()
			}
			return err
		}
		ids = ids[:0]
		for _, f := range strings.Fields(line) {
			v, perr := strconv.ParseInt(f, 10, 32)
			if perr != nil {
				out.abort()
				return fmt.Errorf("line %d: %q is not an id", n, f)
			}
			ids = append(ids, int32(v))
		}
		buf, err = m.AppendDecode(buf[:0], ids)
		if err != nil {
			out.abort()
			return fmt.Errorf("line %d: %v", n, err)
		}
		if err := w.line(buf); err != nil {
			out.abort()
			return err
		}
	}
}

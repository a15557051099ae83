package rougefilter

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/rouge"
)

const scoreSummary = `
Prints the ROUGE-L of pairs of texts, exactly as rouge_score's
RougeScorer(["rougeL"], use_stemmer=False).score(target, prediction):
precision = lcs/len(prediction), recall = lcs/len(target),
fmeasure = 2PR/(P+R). Each output record is the input record (the record of
the first file) with {"precision", "recall", "fmeasure"} added under
--output-field.

Two fields of each record:  --fields TARGET,PREDICTION [FILE...]
Two files, record by record: [--field F] [--against-field G] TARGETS PREDICTIONS
(F in the first file, G in the second; G defaults to F).
`

const scoreExample = `
rougefilter score --fields output,reference generations.jsonl | jq .rougeL.fmeasure
rougefilter score --field instruction a.jsonl b.jsonl --stats > scored.jsonl
`

type scoreOptions struct {
	common       cli.Common
	fields       string
	field        string
	againstField string
	outField     string
	stats        bool
}

func scoreMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o scoreOptions
	cmd := cli.NewCommand("rougefilter score", "[flags] --fields TARGET,PREDICTION [FILE...]\n       rougefilter score [flags] TARGETS PREDICTIONS", scoreSummary, scoreExample)
	cmd.AddCommon(&o.common, cli.FlagOutput|cli.FlagZstd|cli.FlagSkipBad|cli.FlagProgress)
	fs := cmd.Flags
	fs.StringVar(&o.fields, "fields", "", "score the two fields `TARGET,PREDICTION` of each record (rouge_score's target and prediction)")
	fs.StringVar(&o.field, "field", "instruction", "with two files: read the first file's texts from field `NAME`")
	fs.StringVar(&o.againstField, "against-field", "", "with two files: read the second file's texts from field `NAME` (default: --field)")
	fs.StringVar(&o.outField, "output-field", "rougeL", "write the scores to field `NAME`")
	fs.BoolVar(&o.stats, "stats", false, "print the count and the mean precision, recall and fmeasure on stderr")
	files, err := cmd.Parse(args)
	if err == nil {
		err = o.validate(files)
	}
	if err == nil {
		err = runScore(&o, files, stdin, stdout, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func (o *scoreOptions) validate(files []string) error {
	if o.againstField == "" {
		o.againstField = o.field
	}
	switch {
	case o.outField == "":
		return cli.Usagef("--output-field must not be empty")
	case o.fields != "":
		parts := strings.Split(o.fields, ",")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return cli.Usagef("--fields wants TARGET,PREDICTION, got %q", o.fields)
		}
	case len(files) != 2:
		return cli.Usagef("give --fields TARGET,PREDICTION, or exactly two files (got %d)", len(files))
	case o.field == "":
		return cli.Usagef("--field must not be empty")
	}
	return nil
}

// prf is rouge_score's Score tuple for rougeL.
func prf(target, prediction string) (p, r, f float64) {
	t, q := rouge.Tokenize(target), rouge.Tokenize(prediction)
	if len(t) == 0 || len(q) == 0 {
		return 0, 0, 0
	}
	l := rouge.LCS(t, q)
	p = float64(l) / float64(len(q))
	r = float64(l) / float64(len(t))
	return p, r, rouge.FMeasure(l, len(q), len(t))
}

func textField(name string, rec jsonl.Record, field string) (string, error) {
	s, found, err := jsonl.GetText(rec.Raw, field)
	switch {
	case errors.Is(err, jsonl.ErrNotObject):
		return "", jsonl.Errorf(name, rec, "record is %s, not a JSON object", jsonl.TypeName(rec.Raw))
	case err != nil:
		return "", jsonl.Errorf(name, rec, "%v", err)
	case !found:
		return "", jsonl.Errorf(name, rec, "field %q missing", field)
	}
	return s, nil
}

func runScore(o *scoreOptions, files []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	out, err := jsonl.CreateTo(o.common.Output, o.common.Zstd, stdout)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Abort()
		}
	}()
	var n, bad int
	var sp, sr, sf float64
	emit := func(raw []byte, target, prediction string) error {
		p, r, f := prf(target, prediction)
		n++
		sp, sr, sf = sp+p, sr+r, sf+f
		obj := append([]byte(`{"precision":`), pyFloat(nil, p)...)
		obj = append(obj, `,"recall":`...)
		obj = pyFloat(obj, r)
		obj = append(obj, `,"fmeasure":`...)
		obj = pyFloat(obj, f)
		obj = append(obj, '}')
		raw, err := jsonl.Set(raw, o.outField, obj)
		if err != nil {
			return err
		}
		return out.Write(raw)
	}
	next := func(r *jsonl.Reader) (jsonl.Record, error) {
		for {
			rec, err := r.Next()
			if err != nil && o.common.SkipBad && isInvalidJSON(err) {
				bad++
				continue
			}
			return rec, err
		}
	}
	if o.fields != "" {
		fields := strings.Split(o.fields, ",")
		if len(files) == 0 {
			files = []string{"-"}
		}
		for _, path := range files {
			r, err := openInput(path, stdin)
			if err != nil {
				return err
			}
			for {
				rec, err := next(r)
				if err == io.EOF {
					break
				}
				if err != nil {
					r.Close()
					return err
				}
				a, err := textField(r.Name(), rec, fields[0])
				var b string
				if err == nil {
					b, err = textField(r.Name(), rec, fields[1])
				}
				if err != nil {
					if !o.common.SkipBad {
						r.Close()
						return err
					}
					bad++
					if err := out.Write(rec.Raw); err != nil {
						return err
					}
					continue
				}
				if err := emit(rec.Raw, a, b); err != nil {
					r.Close()
					return err
				}
			}
			r.Close()
		}
	} else {
		if files[0] == files[1] && (files[0] == "-" || files[0] == "") {
			return cli.Usagef("only one of the two files can be stdin")
		}
		ra, err := openInput(files[0], stdin)
		if err != nil {
			return err
		}
		defer ra.Close()
		rb, err := openInput(files[1], stdin)
		if err != nil {
			return err
		}
		defer rb.Close()
		for {
			recA, errA := next(ra)
			recB, errB := next(rb)
			if errA == io.EOF && errB == io.EOF {
				break
			}
			if errA != nil && errA != io.EOF {
				return errA
			}
			if errB != nil && errB != io.EOF {
				return errB
			}
			if errA == io.EOF {
				return fmt.Errorf("%s has more records than %s, which ends after %d", rb.Name(), ra.Name(), recB.Num-1)
			}
			if errB == io.EOF {
				return fmt.Errorf("%s has more records than %s, which ends after %d", ra.Name(), rb.Name(), recA.Num-1)
			}
			a, err := textField(ra.Name(), recA, o.field)
			var b string
			if err == nil {
				b, err = textField(rb.Name(), recB, o.againstField)
			}
			if err != nil {
				if !o.common.SkipBad {
					return err
				}
				bad++
				if err := out.Write(recA.Raw); err != nil {
					return err
				}
				continue
			}
			if err := emit(recA.Raw, a, b); err != nil {
				return err
			}
		}
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if o.stats {
		mean := func(s float64) float64 {
			if n == 0 {
				return 0
			}
			return s / float64(n)
		}
		fmt.Fprintf(stderr, "rougefilter score: %d pairs, %d bad; mean precision %.4f, recall %.4f, fmeasure %.4f\n", n, bad, mean(sp), mean(sr), mean(sf))
	}
	return nil
}

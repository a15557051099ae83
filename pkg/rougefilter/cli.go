// Package rougefilter is the rougefilter command: greedy ROUGE-L
// deduplication of a JSONL stream exactly as the Stanford Alpaca generator
// does it (a record is kept when its ROUGE-L F-measure against every text
// kept before it, and every --against text, is <= the threshold), and a
// `score` subcommand printing the metric itself.
package rougefilter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/rouge"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const summary = `
Keeps a record when the ROUGE-L F-measure between its text field and every
text in the pool is <= --threshold (dropped when > threshold), greedily in
stream order: each kept record joins the pool. --against files preload the
pool (e.g. the seed tasks) without being printed. Scores are exactly those of
Google's rouge_score (RougeScorer(["rougeL"], use_stemmer=False)) as used by
the Alpaca/self-instruct generator, bit for bit; pruning by exact bounds and a
bit-parallel LCS make it fast.

Subcommand:
  rougefilter score ...   print the ROUGE-L of two fields or two files
                          (rougefilter score --help)
`

const example = `
# the Alpaca filter: new instructions vs the seed tasks and each other
seedgen --seeds seed_tasks.jsonl | rougefilter --against seed_tasks.jsonl --annotate > kept.jsonl
# deduplicate your own data set at 0.5, keeping the dropped ones for review
rougefilter --threshold 0.5 --rejected dropped.jsonl --stats data.json > dedup.jsonl
`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	common       cli.Common
	field        string
	against      stringList
	againstField string
	threshold    float64
	annotate     bool
	topK         int
	rejected     string
	limit        int
	stats        bool
	reference    bool
	batch        int
}

// Main runs the command with args (without the program name) and returns
// the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "score" {
		return scoreMain(args[1:], stdin, stdout, stderr)
	}
	var o options
	cmd := cli.NewCommand("rougefilter", "[flags] [FILE...]\n       rougefilter score [flags] [FILE...]", summary, example)
	cmd.AddCommon(&o.common, cli.FlagsStream)
	fs := cmd.Flags
	fs.StringVar(&o.field, "field", "instruction", "compare the text in field `NAME`")
	fs.Var(&o.against, "against", "preload the pool with the texts of `FILE` (JSONL, JSON array, zstd); repeatable; not printed")
	fs.StringVar(&o.againstField, "against-field", "", "read the --against texts from field `NAME` (default: --field)")
	fs.Float64Var(&o.threshold, "threshold", 0.7, "drop a record when its F-measure against some pool text is > `F` (0..1)")
	fs.BoolVar(&o.annotate, "annotate", false, "add most_similar_instructions {text: score} (top --top-k) and avg_similarity_score\nto kept records, as the Alpaca generator does (scores every pool text sharing a token)")
	fs.IntVar(&o.topK, "top-k", 10, "list the `N` best pool texts with --annotate")
	fs.StringVar(&o.rejected, "rejected", "", "write dropped records to `FILE` with rouge_best (the best-matching pool text) and rouge_score")
	fs.IntVar(&o.limit, "limit", 0, "stop after `N` kept records (0: no limit)")
	fs.BoolVar(&o.stats, "stats", false, "print a summary (read, kept, dropped, bad, time) on stderr")
	fs.BoolVar(&o.reference, "reference", false, "use the plain O(n·m) dynamic-programming reference instead of the fast filter\n(same results, orders of magnitude slower; for checks and benchmarks)")
	fs.IntVar(&o.batch, "batch", 2048, "decide `N` records per parallel batch (the results do not depend on it)")
	files, err := cmd.Parse(args)
	if err == nil {
		err = o.validate()
	}
	if err == nil {
		err = run(&o, files, stdin, stdout, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func (o *options) validate() error {
	switch {
	case o.field == "":
		return cli.Usagef("--field must not be empty")
	case math.IsNaN(o.threshold) || o.threshold < 0 || o.threshold > 1:
		return cli.Usagef("--threshold must be between 0 and 1, got %v", o.threshold)
	case o.topK < 0:
		return cli.Usagef("--top-k must be >= 0, got %d", o.topK)
	case o.limit < 0:
		return cli.Usagef("--limit must be >= 0, got %d", o.limit)
	case o.common.Workers < 1:
		return cli.Usagef("--workers must be >= 1, got %d", o.common.Workers)
	case o.batch < 1:
		return cli.Usagef("--batch must be >= 1, got %d", o.batch)
	}
	if o.againstField == "" {
		o.againstField = o.field
	}
	return nil
}

// item is one input record on its way through the filter.
type item struct {
	rec  jsonl.Record
	file string
	text string
	bad  error // the record has no usable text field (passed through with --skip-bad)
}

// openInput opens a named input, or stdin for "" and "-".
func openInput(path string, stdin io.Reader) (*jsonl.Reader, error) {
	if xio.IsStdio(path) {
		return jsonl.NewReader(stdin, "<stdin>")
	}
	return jsonl.Open(path)
}

// isInvalidJSON reports whether err is a per-record JSON syntax error after
// which the reader can go on.
func isInvalidJSON(err error) bool {
	var je *jsonl.Error
	return errors.As(err, &je) && je.Record > 0 && strings.HasPrefix(je.Msg, "invalid JSON")
}

// readTexts streams the records of files (stdin when none) with their text
// field into ch. Bad records (not an object, field missing or not a string)
// carry their error; invalid JSON is fatal unless skipBad, when it is counted
// in *skipped. It returns the first fatal error.
func readTexts(ctx context.Context, files []string, stdin io.Reader, field string, skipBad bool, skipped *int, ch chan<- item) error {
	defer close(ch)
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, path := range files {
		r, err := openInput(path, stdin)
		if err != nil {
			return err
		}
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if skipBad && isInvalidJSON(err) {
					*skipped++
					continue
				}
				r.Close()
				return err
			}
			it := item{rec: rec, file: r.Name()}
			s, found, err := jsonl.GetText(rec.Raw, field)
			switch {
			case errors.Is(err, jsonl.ErrNotObject):
				it.bad = jsonl.Errorf(r.Name(), rec, "record is %s, not a JSON object", jsonl.TypeName(rec.Raw))
			case err != nil:
				it.bad = jsonl.Errorf(r.Name(), rec, "%v", err)
			case !found:
				it.bad = jsonl.Errorf(r.Name(), rec, "field %q missing (choose the text field with --field)", field)
			default:
				it.text = s
			}
			select {
			case ch <- it:
			case <-ctx.Done():
				r.Close()
				return ctx.Err()
			}
		}
		r.Close()
	}
	return nil
}

// pool is what the filter loop needs from the fast filter or the reference.
type pool interface {
	Add(text string) int
	Len() int
	CheckBatch(texts []string, add bool, workers int) []rouge.Result
	SimilarAt(text string, k, upto int) ([]rouge.Match, float64)
}

type counts struct {
	read, kept, dropped, bad, invalid, preloaded int
}

func run(o *options, files []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	start := time.Now()
	var p pool
	if o.reference {
		p = newReference(o.threshold)
	} else {
		f := rouge.NewFilter(o.threshold)
		f.ExactBest = o.rejected != "" // report the best match of each dropped record
		p = f
	}
	var c counts
	for _, path := range o.against {
		n, err := preload(p, path, stdin, o.againstField, o.common.SkipBad, &c)
		if err != nil {
			return err
		}
		c.preloaded += n
	}

	out, err := jsonl.CreateTo(o.common.Output, o.common.Zstd, stdout)
	if err != nil {
		return err
	}
	var rej *jsonl.Writer
	defer func() {
		if err != nil {
			out.Abort()
			if rej != nil {
				rej.Abort()
			}
		}
	}()
	if o.rejected != "" {
		if rej, err = jsonl.Create(o.rejected, false); err != nil {
			return err
		}
	}

	ctx, cancel := cli.SignalContext()
	defer cancel()
	ch := make(chan item, 4*o.batch)
	errc := make(chan error, 1)
	go func() {
		defer cli.Guard()
		errc <- readTexts(ctx, files, stdin, o.field, o.common.SkipBad, &c.invalid, ch)
	}()
	defer func() {
		cancel()
		for range ch {
		}
	}()

	prog := cli.NewProgress(stderr, &o.common)
	var pending []item
	texts := make([]string, 0, o.batch)
	idx := make([]int, 0, o.batch)
	done := false
	unflushed := false
	for !done {
		// gather a batch: wait for one record, then take what is ready, so
		// that a slow producer (seedgen | rougefilter) sees each record as
		// soon as it is decided
		pending = pending[:0]
		if len(ch) == 0 && unflushed {
			if err := out.Flush(); err != nil {
				return err
			}
			unflushed = false
		}
		it, ok := <-ch
		if !ok {
			break
		}
		pending = append(pending, it)
	drain:
		for len(pending) < o.batch {
			select {
			case it, ok := <-ch:
				if !ok {
					break drain
				}
				pending = append(pending, it)
			default:
				break drain
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted")
		}
		texts, idx = texts[:0], idx[:0]
		for i, it := range pending {
			if it.bad == nil {
				texts = append(texts, it.text)
				idx = append(idx, i)
			} else if !o.common.SkipBad {
				// decide the good records before it so that the output up to the
				// error is what it would be without the error
				pending = pending[:i+1]
				break
			}
		}
		res := p.CheckBatch(texts, true, o.common.Workers)
		// cut at --limit
		cut := len(pending)
		if o.limit > 0 {
			k := c.kept
			for j, r := range res {
				if r.Keep {
					k++
					if k == o.limit {
						cut = idx[j] + 1
						done = true
						break
					}
				}
			}
		}
		var ann []annotation
		if o.annotate {
			ann = annotate(p, texts, res, idx, cut, o.topK, o.common.Workers)
		}
		j := 0
		for _, it := range pending[:cut] {
			if it.bad != nil {
				if !o.common.SkipBad {
					return it.bad
				}
				c.bad++
				c.read++
				if err := out.Write(it.rec.Raw); err != nil {
					return err
				}
				unflushed = true
				continue
			}
			r := res[j]
			c.read++
			if r.Keep {
				c.kept++
				raw := it.rec.Raw
				if o.annotate {
					if raw, err = ann[j].apply(raw); err != nil {
						return jsonl.Errorf(it.file, it.rec, "%v", err)
					}
				}
				if err := out.Write(raw); err != nil {
					return err
				}
				unflushed = true
			} else {
				c.dropped++
				if rej != nil {
					raw, err := jsonl.SetString(it.rec.Raw, "rouge_best", r.Best.Text)
					if err == nil {
						raw, err = jsonl.Set(raw, "rouge_score", pyFloat(nil, r.Best.Score))
					}
					if err != nil {
						return jsonl.Errorf(it.file, it.rec, "%v", err)
					}
					if err := rej.Write(raw); err != nil {
						return err
					}
				}
			}
			j++
		}
		prog.Update("rougefilter: read %d, kept %d, dropped %d, pool %d", c.read, c.kept, c.dropped, c.preloaded+c.kept)
	}
	prog.Done()
	if done { // --limit reached: stop the reader
		cancel()
		for range ch {
		}
		<-errc
	} else if err := <-errc; err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted")
		}
		return err
	}
	if rej != nil {
		if err := rej.Commit(); err != nil {
			return err
		}
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if o.stats {
		el := time.Since(start)
		// invalid JSON lines skipped by --skip-bad were read too: read =
		// kept + dropped + bad (bad counts both kinds)
		fmt.Fprintf(stderr, "rougefilter: read %d, kept %d, dropped %d, bad %d", c.read+c.invalid, c.kept, c.dropped, c.bad+c.invalid)
		// the pool is what was preloaded plus what was kept (with --limit the
		// last batch may have checked, and pooled, records past the cut)
		fmt.Fprintf(stderr, "; pool %d (%d preloaded); threshold %v; %.3fs", c.preloaded+c.kept, c.preloaded, o.threshold, el.Seconds())
		if el > 0 && c.read > 0 {
			fmt.Fprintf(stderr, " (%.0f records/s)", float64(c.read+c.invalid)/el.Seconds())
		}
		fmt.Fprintln(stderr)
	}
	return nil
}

// preload adds the texts of an --against file to the pool.
func preload(p pool, path string, stdin io.Reader, field string, skipBad bool, c *counts) (int, error) {
	r, err := openInput(path, stdin)
	if err != nil {
		return 0, fmt.Errorf("--against: %w", err)
	}
	defer r.Close()
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			if skipBad && isInvalidJSON(err) {
				continue
			}
			return n, err
		}
		s, found, err := jsonl.GetString(rec.Raw, field)
		if err == nil && !found {
			err = fmt.Errorf("field %q missing (choose it with --against-field)", field)
		}
		if err != nil {
			if skipBad {
				continue
			}
			return n, jsonl.Errorf(r.Name(), rec, "%v", err)
		}
		p.Add(s)
		n++
	}
}

// batchSimilar is a pool that scores several texts in one pass
// (rouge.Filter).
type batchSimilar interface {
	SimilarBatch(texts []string, k int, uptos []int) ([][]rouge.Match, []float64)
}

type annotation struct {
	top []rouge.Match
	avg float64
}

// annotate computes, in parallel, the generator's most_similar_instructions
// and avg_similarity_score of each kept record against the pool as it was
// when the record was decided.
func annotate(p pool, texts []string, res []rouge.Result, idx []int, cut, k, workers int) []annotation {
	const chunk = rouge.SimilarBatchSize // consecutive records, scored in one pass over the pool
	ann := make([]annotation, len(res))
	var jobs []int
	for j, r := range res {
		if r.Keep && idx[j] < cut {
			jobs = append(jobs, j)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer cli.Guard()
			defer wg.Done()
			bt := make([]string, 0, chunk)
			bu := make([]int, 0, chunk)
			for {
				mu.Lock()
				i := next
				next += chunk
				mu.Unlock()
				if i >= len(jobs) {
					return
				}
				c := jobs[i:min(i+chunk, len(jobs))]
				if b, ok := p.(batchSimilar); ok {
					bt, bu = bt[:0], bu[:0]
					for _, j := range c {
						bt = append(bt, texts[j])
						bu = append(bu, res[j].Index)
					}
					tops, avgs := b.SimilarBatch(bt, k, bu)
					for x, j := range c {
						ann[j] = annotation{tops[x], avgs[x]}
					}
					continue
				}
				for _, j := range c {
					top, avg := p.SimilarAt(texts[j], k, res[j].Index)
					ann[j] = annotation{top, avg}
				}
			}
		}()
	}
	wg.Wait()
	return ann
}

func (a annotation) apply(raw []byte) ([]byte, error) {
	obj := []byte{'{'}
	seen := map[string]bool{}
	for _, m := range a.top {
		if seen[m.Text] { // a dict: a repeated text keeps its first place
			continue
		}
		seen[m.Text] = true
		if len(obj) > 1 {
			obj = append(obj, ',')
		}
		obj = jsonl.AppendString(obj, m.Text)
		obj = append(obj, ':')
		obj = pyFloat(obj, m.Score)
	}
	obj = append(obj, '}')
	raw, err := jsonl.Set(raw, "most_similar_instructions", obj)
	if err != nil {
		return nil, err
	}
	return jsonl.Set(raw, "avg_similarity_score", pyFloat(nil, a.avg))
}

// pyFloat appends f the way Python's json module writes a float (repr):
// shortest round-trip digits, "1.0" rather than "1", exponent form below
// 1e-4 and from 1e16.
func pyFloat(dst []byte, f float64) []byte {
	a := math.Abs(f)
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 0):
		if f > 0 {
			return append(dst, "Infinity"...)
		}
		return append(dst, "-Infinity"...)
	case a != 0 && (a < 1e-4 || a >= 1e16):
		s := strconv.FormatFloat(f, 'e', -1, 64)
		return append(dst, s...)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	dst = append(dst, s...)
	if !strings.ContainsAny(s, ".e") {
		dst = append(dst, ".0"...)
	}
	return dst
}

package selfinstruct

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/llmclient"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const example = `export OPENAI_API_KEY=...   # or --api-key-file FILE
seedgen --seeds ../shared/data/seed_tasks.jsonl --model gpt-3.5-turbo-instruct \
    --num-instructions 52000 --concurrency 8 --cache cache/ --resume gen.jsonl
seedgen --base-url http://127.0.0.1:8000/v1 --model my-llama --seeds seeds.jsonl -n 200 | rougefilter | promptfmt
seedgen --chat --model gpt-4o-mini --seeds seeds.jsonl --price-in 0.15 --price-out 0.6 -o gen.jsonl`

// stopList is a repeatable --stop flag; backslash escapes are decoded.
type stopList struct {
	v   []string
	set bool
}

func (s *stopList) String() string {
	if s == nil {
		return ""
	}
	var q []string
	for _, x := range s.v {
		q = append(q, strconv.Quote(x))
	}
	return strings.Join(q, " ")
}

func (s *stopList) Set(v string) error {
	u, err := strconv.Unquote(`"` + strings.ReplaceAll(v, `"`, `\"`) + `"`)
	if err != nil {
		return fmt.Errorf("bad escape in %q", v)
	}
	if !s.set {
		s.v, s.set = nil, true
	}
	if u != "" {
		s.v = append(s.v, u)
	}
	return nil
}

type config struct {
	common                           cli.Common
	seeds, promptFile, model         string
	baseURL, keyFile, cacheDir       string
	resume                           string
	num, k, batch, conc, maxTok      int
	temperature, topP                float64
	stop                             stopList
	seed                             uint64
	threshold                        float64
	noDedup, noAnnotate, chat, print bool
	timings                          string
	topK, retries, maxRequests       int
	maxFruitless                     int
	baseURLSet                       bool
	retryBase, retryMax, timeout     time.Duration
	maxFailures, priceIn, priceOut   float64
}

// Main runs the seedgen command.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("seedgen", "[flags]",
		`Self-instruct data generation, as the Stanford Alpaca generator: each
prompt shows --prompt-instructions seed tasks picked at random and asks an
OpenAI-compatible teacher to continue the numbered list up to 20 tasks. The
answers are parsed, filtered (length, blacklisted words, "Write a
program", leading punctuation or non-ASCII) and deduplicated with ROUGE-L
against the seeds and everything kept so far; kept records (instruction,
input, output, most_similar_instructions, avg_similarity_score) stream out
as JSONL until --num-instructions are kept.

Requests run concurrently but are handled in order, so the same --seed and
the same answers (--cache) give byte-identical output. With -o/--resume FILE
a checkpoint FILE.state.json is kept; kill the run at any moment and
--resume FILE continues it without losing or repeating a record. The API key
comes from $OPENAI_API_KEY or --api-key-file and is never printed.`, example)
	var c config
	c.stop.v = []string{"\n20", "20."}
	fs := cmd.Flags
	cmd.AddCommon(&c.common, cli.FlagsStream&^cli.FlagSkipBad)
	fs.StringVar(&c.seeds, "seeds", "", "seed tasks `FILE` (self-instruct seed_tasks.jsonl format or instruction/input/output records; required)")
	fs.IntVar(&c.num, "num-instructions", 100, "stop once `N` records are kept (in total, with --resume)")
	cmd.Alias("n", "num-instructions")
	fs.IntVar(&c.k, "prompt-instructions", 3, "seed tasks shown in each prompt (`N`)")
	fs.StringVar(&c.promptFile, "prompt-file", "", "preamble `FILE` put before the seed tasks (e.g. the original prompt.txt); default: our own text")
	fs.IntVar(&c.batch, "request-batch", 5, "prompts per request (`N`; chat: one call each)")
	fs.IntVar(&c.conc, "concurrency", 4, "requests in flight (`N`)")
	fs.StringVar(&c.model, "model", "", "teacher model `NAME` (required: e.g. gpt-4o-mini on OpenAI, the name a local vLLM, llama.cpp, Ollama or 'generate serve' server reports at /v1/models)")
	fs.BoolVar(&c.chat, "chat", false, "use the chat completions API (one user message) instead of completions")
	fs.StringVar(&c.baseURL, "base-url", "", "OpenAI-compatible endpoint `URL` (default $OPENAI_BASE_URL, else https://api.openai.com/v1)")
	fs.StringVar(&c.keyFile, "api-key-file", "", "read the API key from `FILE` (default $OPENAI_API_KEY)")
	fs.Float64Var(&c.temperature, "temperature", 1.0, "sampling temperature `T`")
	fs.Float64Var(&c.topP, "top-p", 1.0, "nucleus sampling `P`")
	fs.IntVar(&c.maxTok, "max-tokens", 3072, "most tokens per answer (`N`; shrunk automatically on a context-length error)")
	fs.Var(&c.stop, "stop", "stop `SEQ`uence, backslash escapes allowed; repeat for several; replaces the default (\"\\n20\" \"20.\"); --stop '' for none")
	fs.Uint64Var(&c.seed, "seed", 42, "random `N` for sampling the seed tasks of each prompt")
	fs.Float64Var(&c.threshold, "threshold", 0.7, "drop an instruction whose ROUGE-L F against the pool is above `F`")
	fs.BoolVar(&c.noDedup, "no-dedup", false, "no ROUGE-L dedup or annotations (leave it to rougefilter)")
	fs.BoolVar(&c.noAnnotate, "no-annotate", false, "dedup, but do not add most_similar_instructions and avg_similarity_score (much faster on big pools)")
	fs.IntVar(&c.topK, "top-k", 10, "most similar instructions listed per record (`N`)")
	fs.StringVar(&c.cacheDir, "cache", "", "store every raw answer in `DIR` under a hash of its request and reuse it")
	fs.StringVar(&c.resume, "resume", "", "continue the run writing `FILE`: reload its records, append new ones (starts afresh when FILE does not exist)")
	fs.IntVar(&c.retries, "retries", 8, "retries per request on 429, 5xx, timeouts, dropped connections, bad answers (`N`)")
	fs.DurationVar(&c.retryBase, "retry-base", time.Second, "first backoff `D` (doubles each retry, with jitter; Retry-After wins)")
	fs.DurationVar(&c.retryMax, "retry-max", time.Minute, "longest backoff `D`")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "time limit `D` per HTTP call")
	fs.Float64Var(&c.maxFailures, "max-failures", 0.2, "stop when more than this fraction `F` of requests fail after their retries (checked from 10 requests on)")
	fs.IntVar(&c.maxRequests, "max-requests", 0, "stop after `N` requests in total (0: no limit)")
	fs.IntVar(&c.maxFruitless, "max-fruitless", DefaultMaxFruitless, "stop (exit 1) when `N` requests in a row keep no record: the teacher's answers give no usable task (0: never)")
	fs.Float64Var(&c.priceIn, "price-in", 0, "USD per 1M prompt tokens, for the cost estimate (`X`)")
	fs.Float64Var(&c.priceOut, "price-out", 0, "USD per 1M completion tokens, for the cost estimate (`X`)")
	fs.BoolVar(&c.print, "print-prompt", false, "print the first prompt and exit (nothing is sent)")
	fs.StringVar(&c.timings, "timings", "", "append a JSON line {kept, pool, wall_s, cpu_s} to `FILE` every 1000 records kept (benchmarks)")
	pos, err := cmd.Parse(args)
	if err == nil && len(pos) > 0 {
		err = cli.Usagef("unexpected argument %q (seed tasks go in --seeds)", pos[0])
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "base-url" {
			c.baseURLSet = true
		}
	})
	if err == nil {
		err = run(&c, stdout, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func (c *config) check() error {
	switch {
	case c.seeds == "":
		return cli.Usagef("--seeds FILE is required")
	case c.num < 1:
		return cli.Usagef("--num-instructions must be at least 1")
	case c.k < 1:
		return cli.Usagef("--prompt-instructions must be at least 1")
	case c.batch < 1 || c.conc < 1:
		return cli.Usagef("--request-batch and --concurrency must be at least 1")
	case c.maxTok < 1:
		return cli.Usagef("--max-tokens must be at least 1")
	case !(c.threshold >= 0 && c.threshold <= 1):
		return cli.Usagef("--threshold must be between 0 and 1")
	case !(c.temperature >= 0) || !(c.topP >= 0 && c.topP <= 1):
		return cli.Usagef("--temperature must be >= 0 and --top-p between 0 and 1")
	case !(c.maxFailures >= 0) || !(c.priceIn >= 0) || !(c.priceOut >= 0):
		return cli.Usagef("--max-failures, --price-in and --price-out must not be negative")
	case c.model == "" && !c.print:
		return cli.Usagef("--model NAME is required: the teacher's model name (e.g. gpt-4o-mini on OpenAI; a local server's name at /v1/models; teachersim for the simulator). text-davinci-003, Alpaca's, is retired")
	case c.maxFruitless < 0 || c.maxRequests < 0 || c.retries < 0:
		return cli.Usagef("--max-fruitless, --max-requests and --retries must not be negative")
	case c.resume != "" && c.common.Output != "" && c.common.Output != c.resume:
		return cli.Usagef("--resume FILE is also the output; drop -o or give the same name")
	case c.resume != "" && xio.IsStdio(c.resume):
		return cli.Usagef("--resume needs a file name")
	}
	if c.resume != "" {
		c.common.Output = c.resume
	}
	if err := c.checkBaseURL(); err != nil {
		return err
	}
	if !xio.IsStdio(c.common.Output) && xio.WantsZstd(c.common.Output, c.common.Zstd) {
		return cli.Usagef("a file output is appended to as records are kept and cannot be compressed; write to stdout with --zstd, or compress the file afterwards")
	}
	return nil
}

// DefaultListLength is the length of the task list DefaultPrompt asks
// for; the default --stop ends the answer before task 20, so the teacher
// writes tasks K+1 to 19.
const DefaultListLength = 20

// DefaultMaxFruitless is --max-fruitless: requests in a row that keep
// no record before seedgen gives up. A healthy run keeps a few records of
// nearly every request (the original keeps about a quarter of the blocks
// late in a 52K run, from about 13 blocks per prompt); 50 requests in a row
// with nothing kept does not happen by chance.
const DefaultMaxFruitless = 50

// checkBaseURL resolves --base-url ($OPENAI_BASE_URL when not given) and
// checks it: http or https, a host, a port in range. An empty --base-url
// given explicitly is a mistake, not a request for the public host.
func (c *config) checkBaseURL() error {
	if c.baseURLSet && strings.TrimSpace(c.baseURL) == "" {
		if env := os.Getenv("OPENAI_BASE_URL"); env != "" {
			c.baseURL = env
		} else {
			return cli.Usagef("--base-url is empty (and $OPENAI_BASE_URL is not set); give the endpoint URL, or leave the flag out for %s", llmclient.DefaultBaseURL)
		}
	}
	from := "--base-url"
	if c.baseURL == "" {
		c.baseURL = os.Getenv("OPENAI_BASE_URL")
		from = "$OPENAI_BASE_URL"
	}
	if c.baseURL == "" {
		return nil // the client's default, the public OpenAI endpoint
	}
	if err := llmclient.CheckBaseURL(c.baseURL); err != nil {
		return cli.Usagef("%s %q: %v", from, c.baseURL, err)
	}
	return nil
}

func (c *config) fingerprint(p *Prompter) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%q\x00%d\x00%d\x00%d\x00%s\x00%v\x00%g\x00%g\x00%q\x00%v\x00%g\x00%d\x00",
		p.Header, p.Seeds, c.seed, c.k, c.batch, c.model, c.chat, c.temperature, c.topP, c.stop.v, c.noDedup, c.threshold, c.maxTok)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func run(c *config, stdout, stderr io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	started := time.Now()
	cpu0 := cpuTime()
	seeds, err := LoadTasks(c.seeds)
	if err != nil {
		return err
	}
	p := &Prompter{Seeds: seeds, K: c.k}
	if c.promptFile != "" {
		b, err := os.ReadFile(c.promptFile)
		if err != nil {
			return err
		}
		p.Header = string(b)
	} else if p.First() >= DefaultListLength {
		return cli.Usagef("--prompt-instructions %d shows %d seed tasks, but the default prompt asks for a list of %d: no room for new tasks (use fewer, or a --prompt-file that asks for more)", c.k, p.First()-1, DefaultListLength)
	}
	if c.print {
		_, err := fmt.Fprintln(stdout, p.Build(p.Sample(c.seed, 0)))
		return err
	}
	quiet := c.common.Quiet
	errw := &lockedWriter{w: stderr} // the client's workers log concurrently
	logf := func(format string, args ...any) {
		if !quiet {
			fmt.Fprintf(errw, "seedgen: "+format+"\n", args...)
		}
	}
	apiKey := os.Getenv("OPENAI_API_KEY")
	if c.keyFile != "" {
		b, err := os.ReadFile(c.keyFile)
		if err != nil {
			return err
		}
		apiKey = strings.TrimSpace(string(b))
	}
	baseURL := c.baseURL // checked (check), $OPENAI_BASE_URL applied
	client := llmclient.New(llmclient.Config{
		BaseURL: baseURL, APIKey: apiKey, Model: c.model, Chat: c.chat,
		Retries: c.retries, BackoffBase: c.retryBase, BackoffMax: c.retryMax, Timeout: c.timeout,
		CacheDir: c.cacheDir, Logf: logf,
	})
	fp := c.fingerprint(p)

	// Output: stdout (streamed, no checkpoint) or a file appended to.
	var (
		w         *bufio.Writer
		flush     func() error
		closeOut  func() error
		st        *State
		before    []Kept
		tail      []Kept
		statePath string
	)
	if xio.IsStdio(c.common.Output) {
		o, err := xio.CreateTo("-", c.common.Zstd, stdout)
		if err != nil {
			return err
		}
		w = o.Writer
		flush = o.Flush
		closeOut = o.Commit
	} else {
		path := c.common.Output
		statePath = path + ".state.json"
		if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file; seedgen appends to its output as records are kept (write to stdout for a pipe or device)", path)
		}
		if c.resume == "" {
			if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
				return fmt.Errorf("%s already exists; continue it with --resume %s, or remove it", path, path)
			}
			os.Remove(statePath)
		} else {
			st, before, tail, err = loadResume(path, statePath, fp, logf)
			if err != nil {
				return err
			}
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		// The file only ever holds whole records: what is written is
		// counted, and on a write error (a full disk) the file is cut back
		// to the end of the last request flushed whole, which is what the
		// checkpoint and the summary count.
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		aw := &appendWriter{f: f, good: fi.Size()}
		w = bufio.NewWriterSize(aw, 1<<20)
		flush = func() error { return aw.flush(w, path) }
		closeOut = func() error {
			err := aw.flush(w, path)
			if serr := f.Sync(); err == nil {
				err = serr
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
	}
	if st != nil && st.Fingerprint != "" && st.Fingerprint != fp {
		logf("warning: settings differ from the run being resumed (seeds, prompt, seed, model, sampling or dedup); going on from request %d", st.NextRequest)
	}
	start := State{}
	if st != nil {
		start = *st
	}
	prog := cli.NewProgress(stderr, &c.common)
	opts := Options{
		Prompter: p, Teacher: client,
		Request: llmclient.Request{MaxTokens: c.maxTok, Temperature: float32(c.temperature), TopP: float32(c.topP), Stop: c.stop.v, N: 1},
		Batch:   c.batch, Concurrency: c.conc, Seed: c.seed, Target: c.num,
		Dedup: !c.noDedup, Threshold: c.threshold, Annotate: !c.noAnnotate, TopK: c.topK,
		Workers: max(c.common.Workers, 1), MaxFailures: c.maxFailures, MaxRequests: c.maxRequests,
		MaxFruitless: c.maxFruitless,
		Logf:         func(format string, args ...any) { prog.Done(); logf(format, args...) },
	}
	var timings *os.File
	if c.timings != "" {
		timings, err = os.OpenFile(c.timings, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer timings.Close()
	}
	lastMark := 0
	if st != nil {
		lastMark = st.Kept / 1000
	}
	opts.OnProgress = func(s *State, inFlight int) {
		if timings != nil && s.Kept/1000 > lastMark {
			lastMark = s.Kept / 1000
			fmt.Fprintf(timings, "{\"kept\":%d,\"pool\":%d,\"wall_s\":%.3f,\"cpu_s\":%.3f}\n", s.Kept, s.Kept+len(seeds), time.Since(started).Seconds(), (cpuTime() - cpu0).Seconds())
		}
		el := prog.Elapsed().Seconds()
		keptRun := s.Kept - start.Kept
		rate := float64(keptRun) / max(el, 1e-9)
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(c.num-s.Kept)/rate) * time.Second).Round(time.Second).String()
		}
		prog.Update("seedgen: kept %d/%d | requests %d (%d cached, %d failed) | %.1f kept/s | ETA %s",
			s.Kept, c.num, s.Requests, s.Cached, s.Failed, rate, eta)
	}
	if statePath != "" {
		opts.OnCheckpoint = func(s *State) error { return saveState(statePath, s) }
	}
	g := NewGenerator(opts, w, flush, st)
	g.State().Fingerprint = fp
	g.LoadKept(before, tail)
	if len(before)+len(tail) > 0 {
		logf("resuming %s: %d records kept, from request %d", c.common.Output, len(before)+len(tail), g.State().NextRequest)
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	runErr := g.Run(ctx)
	prog.Done()
	if err := closeOut(); err != nil && runErr == nil {
		runErr = err
	}
	if statePath != "" && !xio.IsBrokenPipe(runErr) {
		if err := saveState(statePath, g.State()); err != nil && runErr == nil {
			runErr = err
		}
	}
	var fe *llmclient.FatalError
	fatalAtOnce := errors.As(runErr, &fe) && g.State().Kept == start.Kept
	if !quiet && !xio.IsBrokenPipe(runErr) && !fatalAtOnce {
		summary(errw, c, g.State(), &start, time.Since(started), cpuTime()-cpu0)
	}
	if errors.Is(runErr, context.Canceled) {
		if statePath != "" {
			return fmt.Errorf("interrupted with %d records kept in %s; continue with --resume %s", g.State().Kept, c.common.Output, c.common.Output)
		}
		return fmt.Errorf("interrupted with %d records kept", g.State().Kept)
	}
	return runErr
}

// appendWriter is the file output of seedgen: it counts the bytes that
// reached the file, and cuts a torn write off again.
type appendWriter struct {
	f       *os.File
	good    int64 // file size at the last whole flush
	written int64 // bytes written since
}

func (a *appendWriter) Write(p []byte) (int, error) {
	n, err := a.f.Write(p)
	a.written += int64(n)
	return n, err
}

// flush pushes w's buffer to the file; on error it truncates the file to
// its last good size.
func (a *appendWriter) flush(w *bufio.Writer, path string) error {
	if err := w.Flush(); err != nil {
		if a.written > 0 {
			if terr := a.f.Truncate(a.good); terr != nil {
				return fmt.Errorf("%s: %v; and cutting off the partly written records failed: %v (check its last line before --resume)", path, err, terr)
			}
		}
		a.written = 0
		w.Reset(a) // drop the unwritten records: they are not counted
		return fmt.Errorf("%w (%s is cut back to its last whole record; continue with --resume)", err, path)
	}
	a.good += a.written
	a.written = 0
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// loadResume reads the output of an earlier run and its checkpoint. A torn
// last line (no newline: the run died while writing it) is cut off.
func loadResume(path, statePath, fp string, logf func(string, ...any)) (*State, []Kept, []Kept, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if bytes.HasPrefix(data, xio.ZstdMagic) {
		return nil, nil, nil, fmt.Errorf("%s is zstd-compressed; --resume appends to a plain JSONL file (decompress it first)", path)
	}
	// A torn last line (the run died while writing it) is cut off, but
	// only once the rest has been read as seedgen's records and the torn
	// part looks like the start of one: nothing is destroyed in a file
	// that is not ours.
	torn := 0
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		part := data[i+1:]
		if !bytes.HasPrefix(part, []byte("{")) || bytes.IndexByte(part, 0) >= 0 || !utf8.Valid(part) || len(part) > maxTornLine {
			return nil, nil, nil, fmt.Errorf("%s: the last line (%d bytes) has no newline and is not the start of a record; not a file seedgen wrote? (nothing was changed)", path, len(part))
		}
		torn = len(part)
		data = data[:i+1]
	}
	st := &State{Version: 1}
	if b, err := xio.ReadRegular(statePath, maxStateBytes); err == nil {
		if st, err = ParseState(b); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %v", statePath, err)
		}
		if st.OutBytes > int64(len(data)) {
			// The checkpoint got to disk but not all the records it covers
			// (a power loss), or the file was cut by hand: match what is
			// there from request 0 (counters start again).
			logf("resume: %s is shorter (%d bytes) than its checkpoint says (%d bytes); matching its records from request 0", path, len(data), st.OutBytes)
			st = &State{Version: 1}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, err
	} else if len(data) > 0 {
		logf("resume: no checkpoint %s; the records of %s are matched against the answers from request 0 on", statePath, path)
	}
	r, err := jsonl.NewReader(bytes.NewReader(data), path)
	if err != nil {
		return nil, nil, nil, err
	}
	var before, tail []Kept
	var off int64
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, err
		}
		inst, found, err := jsonl.GetString(rec.Raw, "instruction")
		if err == nil && !found {
			err = fmt.Errorf("no \"instruction\" field")
		}
		if err != nil {
			return nil, nil, nil, jsonl.Errorf(path, rec, "%v", err)
		}
		// Lines are written by us: one record per line, '\n' ended.
		n := int64(len(rec.Raw) + 1)
		k := Kept{Instruction: inst, Bytes: n}
		if off < st.OutBytes {
			before = append(before, k)
		} else {
			tail = append(tail, k)
		}
		off += n
	}
	if off != int64(len(data)) {
		return nil, nil, nil, fmt.Errorf("%s: not one compact JSON record per line; was it edited? (resume needs the file as seedgen wrote it)", path)
	}
	if torn > 0 {
		logf("resume: cutting off an incomplete last line of %s (%d bytes)", path, torn)
		if err := os.Truncate(path, int64(len(data))); err != nil {
			return nil, nil, nil, err
		}
	}
	return st, before, tail, nil
}

// maxStateBytes bounds a checkpoint FILE.state.json (a few hundred bytes).
const maxStateBytes = 1 << 20

// ParseState decodes a seedgen checkpoint and checks its counters: none
// negative, the request counters consistent.
func ParseState(b []byte) (*State, error) {
	st := &State{Version: 1}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, err
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("checkpoint version %d (this build reads 1)", st.Version)
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"next_request", int64(st.NextRequest)}, {"out_bytes", st.OutBytes}, {"kept", int64(st.Kept)}, {"requests", int64(st.Requests)},
		{"http_calls", int64(st.Calls)}, {"cached", int64(st.Cached)}, {"retries", int64(st.Retries)}, {"context_shrinks", int64(st.Shrunk)},
		{"failed", int64(st.Failed)}, {"prompt_tokens", int64(st.PromptTok)}, {"completion_tokens", int64(st.ComplTok)},
		{"blocks", int64(st.Candidates)}, {"surplus", int64(st.Surplus)}} {
		if v.n < 0 {
			return nil, fmt.Errorf("%s %d is negative", v.name, v.n)
		}
	}
	for r, n := range st.Discarded {
		if n < 0 {
			return nil, fmt.Errorf("discarded %q %d is negative", r, n)
		}
	}
	if st.NextRequest > maxRequestIndex {
		return nil, fmt.Errorf("next_request %d is implausible", st.NextRequest)
	}
	return st, nil
}

// maxRequestIndex bounds request numbers (idx × --request-batch must not
// overflow when prompts are numbered).
const maxRequestIndex = 1 << 40

// maxTornLine bounds the torn last line --resume cuts off (one record of
// seedgen's is a few KB; its annotations at most a few more).
const maxTornLine = 1 << 20

// saveState writes the checkpoint: temporary file and rename, so it is
// always whole.
func saveState(path string, st *State) error {
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func summary(w io.Writer, c *config, st, start *State, wall, cpu time.Duration) {
	cost := func(pt, ct int) float64 { return float64(pt)/1e6*c.priceIn + float64(ct)/1e6*c.priceOut }
	run := st.Kept - start.Kept
	fmt.Fprintf(w, "seedgen: kept %d of %d (%d this run) from %d requests (%d answered from the cache, %d failed), %d HTTP calls, %d retries, %d context shrinks\n",
		st.Kept, c.num, run, st.Requests, st.Cached, st.Failed, st.Calls, st.Retries, st.Shrunk)
	line := fmt.Sprintf("seedgen: tokens: %d prompt, %d completion", st.PromptTok, st.ComplTok)
	if c.priceIn > 0 || c.priceOut > 0 {
		line += fmt.Sprintf("; estimated cost $%.4f (this run $%.4f)", cost(st.PromptTok, st.ComplTok), cost(st.PromptTok-start.PromptTok, st.ComplTok-start.ComplTok))
	} else {
		line += " (set --price-in/--price-out for a cost estimate)"
	}
	fmt.Fprintln(w, line)
	var reasons []string
	for r := range st.Discarded {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	parts := []string{fmt.Sprintf("%d kept", st.Kept)}
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", st.Discarded[r], r))
	}
	if st.Surplus > 0 {
		parts = append(parts, fmt.Sprintf("%d past the target", st.Surplus))
	}
	fmt.Fprintf(w, "seedgen: %d blocks: %s\n", st.Candidates, strings.Join(parts, ", "))
	per := ""
	if run > 0 {
		per = fmt.Sprintf("; per kept record %.3f ms wall, %.3f ms CPU", float64(wall.Microseconds())/1e3/float64(run), float64(cpu.Microseconds())/1e3/float64(run))
	}
	fmt.Fprintf(w, "seedgen: %.2fs wall, %.2fs CPU%s\n", wall.Seconds(), cpu.Seconds(), per)
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

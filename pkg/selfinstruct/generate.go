package selfinstruct

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/llmclient"
	"github.com/alpaca-go/alpaca/pkg/rouge"
)

// Teacher answers requests; *llmclient.Client is one.
type Teacher interface {
	Do(ctx context.Context, req llmclient.Request) (*llmclient.Result, error)
}

// Options configure a Generator.
type Options struct {
	Prompter    *Prompter
	Teacher     Teacher
	Request     llmclient.Request // sampling settings (Prompts is filled per request)
	Batch       int               // prompts per request (default 1)
	Concurrency int               // requests in flight (default 1)
	Seed        uint64
	Target      int     // stop once this many records are kept in total
	Dedup       bool    // ROUGE-L dedup against seeds + kept
	Threshold   float64 // dedup threshold (0.7)
	Annotate    bool    // add most_similar_instructions and avg_similarity_score
	TopK        int     // most similar instructions listed (10)
	Workers     int     // CPU workers for dedup and annotations
	MaxFailures float64 // stop when failed requests / finished requests exceed it (after 10)
	MaxRequests int     // stop after this many requests in total (0: no limit)
	// MaxFruitless stops the run when this many requests in a row kept
	// no record (answers that parse into nothing, all filtered or
	// duplicates, or failures): the teacher is not producing usable
	// tasks and the run would never end. 0: no limit.
	MaxFruitless int
	Logf         func(format string, args ...any)
	OnCheckpoint func(st *State) error            // after each request's records are written
	OnProgress   func(st *State, inFlight int)    // after each request
	Warnf        func(format string, args ...any) // resume notices
}

// State is what a checkpoint holds: where generation stands and the
// totals so far. It is saved beside the output after every request.
type State struct {
	Version     int            `json:"version"`
	Fingerprint string         `json:"fingerprint"`
	NextRequest int            `json:"next_request"` // requests 0..NextRequest-1 are done
	OutBytes    int64          `json:"out_bytes"`    // output bytes covering them
	Kept        int            `json:"kept"`
	Requests    int            `json:"requests"` // requests done (answered or failed)
	Calls       int            `json:"http_calls"`
	Cached      int            `json:"cached"`
	Retries     int            `json:"retries"`
	Shrunk      int            `json:"context_shrinks"`
	Failed      int            `json:"failed"`
	PromptTok   int            `json:"prompt_tokens"`
	ComplTok    int            `json:"completion_tokens"`
	Candidates  int            `json:"blocks"` // parsed or not
	Discarded   map[string]int `json:"discarded"`
	Surplus     int            `json:"surplus"` // would have been kept, past the target
}

// Generator runs the self-instruct loop.
type Generator struct {
	o     Options
	pool  *rouge.Filter
	out   io.Writer
	st    *State
	tail  []Kept // resume: records already written past the checkpoint
	flush func() error
	// fruitless counts the requests in a row that kept no record.
	fruitless int
}

// NewGenerator makes a generator writing kept records to out; flush (may
// be nil) is called after each request's records are written, before the
// checkpoint. st is the state to continue from (nil: a fresh start).
func NewGenerator(o Options, out io.Writer, flush func() error, st *State) *Generator {
	if o.Batch <= 0 {
		o.Batch = 1
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.TopK <= 0 {
		o.TopK = 10
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Warnf == nil {
		o.Warnf = o.Logf
	}
	if st == nil {
		st = &State{Version: 1}
	}
	if st.Discarded == nil {
		st.Discarded = map[string]int{}
	}
	g := &Generator{o: o, out: out, st: st, flush: flush}
	if o.Dedup {
		g.pool = rouge.NewFilter(o.Threshold)
		for _, s := range o.Prompter.Seeds {
			g.pool.Add(s.Instruction)
		}
	}
	return g
}

// State is the live state (read it after Run returns).
func (g *Generator) State() *State { return g.st }

// LoadKept adds records kept by an earlier run to the pool. Records before
// the checkpoint are plain pool members; the tail (written after the last
// checkpoint, by the request that was being handled when the run stopped)
// is matched against that request's answer when it is handled again.
func (g *Generator) LoadKept(before, tail []Kept) {
	for _, k := range before {
		if g.pool != nil {
			g.pool.Add(k.Instruction)
		}
	}
	g.st.Kept = len(before) + len(tail)
	g.tail = tail
}

// Kept is a record of an earlier run: its instruction and its size in
// the output (line included).
type Kept struct {
	Instruction string
	Bytes       int64
}

type job struct {
	idx int
	res *llmclient.Result
	err error
}

// ErrTooManyFailures is returned when the failure rate passes MaxFailures.
var ErrTooManyFailures = errors.New("too many failed requests")

// ErrNoProgress is returned when MaxFruitless requests in a row kept no
// record.
var ErrNoProgress = errors.New("no progress")

// Run generates until the target is reached, the context is cancelled
// (returns its error), or a fatal error. Records are written in request
// order, so the output depends only on the seed and the answers.
func (g *Generator) Run(ctx context.Context) error {
	if g.st.Kept >= g.o.Target && len(g.tail) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	window := 2 * g.o.Concurrency
	todo := make(chan int)
	done := make(chan job, window)
	slots := make(chan struct{}, window)
	var wg sync.WaitGroup
	for w := 0; w < g.o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer cli.Guard()
			defer wg.Done()
			for idx := range todo {
				res, err := g.o.Teacher.Do(ctx, g.request(idx))
				done <- job{idx, res, err}
			}
		}()
	}
	go func() {
		defer cli.Guard()
		defer close(todo)
		for idx := g.st.NextRequest; g.o.MaxRequests <= 0 || idx < g.o.MaxRequests; idx++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case todo <- idx:
			case <-ctx.Done():
				return
			}
		}
	}()
	pending := map[int]job{}
	defer func() {
		cancel()
		go func() {
			defer cli.Guard()
			wg.Wait()
			close(done)
		}()
		// Requests answered (or cut off) but not handled still cost their
		// HTTP calls and tokens: count them, not as requests done.
		for j := range done {
			pending[j.idx] = j
		}
		for _, j := range pending {
			g.account(j.res)
		}
	}()

	for {
		if g.o.MaxRequests > 0 && g.st.NextRequest >= g.o.MaxRequests {
			return fmt.Errorf("stopped after --max-requests %d with %d of %d records kept", g.o.MaxRequests, g.st.Kept, g.o.Target)
		}
		var j job
		select {
		case j = <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		pending[j.idx] = j
		for {
			j, ok := pending[g.st.NextRequest]
			if !ok {
				break
			}
			delete(pending, j.idx)
			<-slots
			kept, tail := g.st.Kept, len(g.tail)
			if err := g.handle(ctx, j); err != nil {
				return err
			}
			if g.st.Kept > kept || len(g.tail) < tail {
				g.fruitless = 0
			} else if g.fruitless++; g.o.MaxFruitless > 0 && g.fruitless >= g.o.MaxFruitless {
				return fmt.Errorf("%w: the last %d requests kept no record (%s); the teacher's answers give no usable task: check --model, --prompt-file and the server, or raise --max-fruitless",
					ErrNoProgress, g.fruitless, g.discardSummary())
			}
			if g.o.OnProgress != nil {
				g.o.OnProgress(g.st, len(pending))
			}
			if g.st.Kept >= g.o.Target && len(g.tail) == 0 {
				return nil
			}
		}
	}
}

// request builds request idx: prompts idx*Batch ... idx*Batch+Batch-1.
func (g *Generator) request(idx int) llmclient.Request {
	r := g.o.Request
	r.Prompts = make([]string, g.o.Batch)
	for b := range r.Prompts {
		p := uint64(idx*g.o.Batch + b)
		r.Prompts[b] = g.o.Prompter.Build(g.o.Prompter.Sample(g.o.Seed, p))
	}
	return r
}

// handle processes the answer to one request, in request order.
func (g *Generator) handle(ctx context.Context, j job) error {
	st := g.st
	g.account(j.res)
	st.Requests++
	var lines []byte
	if j.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe *llmclient.FatalError
		if errors.As(j.err, &fe) {
			return fmt.Errorf("request %d: %w", j.idx, j.err)
		}
		st.Failed++
		g.o.Logf("request %d failed, skipped: %v", j.idx, j.err)
		if st.Requests >= 10 && float64(st.Failed)/float64(st.Requests) > g.o.MaxFailures {
			return fmt.Errorf("%w: %d of %d failed (--max-failures %g); last error: %v", ErrTooManyFailures, st.Failed, st.Requests, g.o.MaxFailures, j.err)
		}
	}
	keptBefore := st.Kept
	if j.err == nil {
		var err error
		lines, err = g.process(j.res)
		if err != nil {
			return err
		}
	}
	// On a write error (a full disk) the records of this request are not
	// counted: the output holds what the checkpoint says (the file
	// output is cut back to its last whole request, see the CLI).
	if len(lines) > 0 {
		if _, err := g.out.Write(lines); err != nil {
			st.Kept = keptBefore
			return err
		}
	}
	if g.flush != nil {
		if err := g.flush(); err != nil {
			st.Kept = keptBefore
			return err
		}
	}
	st.NextRequest = j.idx + 1
	st.OutBytes += int64(len(lines))
	if g.o.OnCheckpoint != nil && len(g.tail) == 0 {
		return g.o.OnCheckpoint(st)
	}
	return nil
}

// account adds what an answer cost to the totals.
func (g *Generator) account(res *llmclient.Result) {
	if res == nil {
		return
	}
	st := g.st
	st.Calls += res.Calls
	st.Cached += res.Cached
	st.Retries += res.Retries
	st.Shrunk += res.Shrunk
	st.PromptTok += res.PromptTokens
	st.ComplTok += res.CompletionTokens
}

// discardSummary says why blocks were dropped so far, for messages.
func (g *Generator) discardSummary() string {
	st := g.st
	var reasons []string
	for r := range st.Discarded {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	parts := []string{fmt.Sprintf("%d blocks in all", st.Candidates)}
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", st.Discarded[r], r))
	}
	if st.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d requests failed", st.Failed))
	}
	return strings.Join(parts, ", ")
}

type cand struct {
	t     Task
	index int // pool index when kept (dedup)
}

// process parses, filters and dedups the answers and returns the JSONL
// lines to write.
func (g *Generator) process(res *llmclient.Result) ([]byte, error) {
	st := g.st
	choices := append([]llmclient.Choice(nil), res.Choices...)
	sort.SliceStable(choices, func(a, b int) bool { return choices[a].Prompt < choices[b].Prompt })
	var cands []Task
	for _, ch := range choices {
		for _, b := range ParseResponse(ch.Text, g.o.Prompter.First(), ch.FinishReason) {
			st.Candidates++
			if b.Reason != "" {
				st.Discarded[b.Reason]++
				continue
			}
			if r := FilterReason(b.Task); r != "" {
				st.Discarded[r]++
				continue
			}
			cands = append(cands, b.Task)
		}
	}
	// While a resume tail is pending, decide one by one and match the
	// records already written.
	i := 0
	for ; i < len(cands) && len(g.tail) > 0; i++ {
		t := cands[i]
		if g.pool != nil {
			if keep, _ := g.pool.Check(t.Instruction, false); !keep {
				st.Discarded[ReasonDuplicate]++
				continue
			}
		}
		if t.Instruction != g.tail[0].Instruction {
			g.o.Warnf("resume: the answer to request %d differs from the records written before the interruption (no --cache, or changed settings?); keeping the %d records written and going on with request %d",
				st.NextRequest, len(g.tail), st.NextRequest+1)
			st.Surplus += len(cands) - i
			st.Candidates += len(g.tail) // blocks of the lost answer, kept
			for _, k := range g.tail {
				if g.pool != nil {
					g.pool.Add(k.Instruction)
				}
				st.OutBytes += k.Bytes
			}
			g.tail = nil
			return nil, nil
		}
		if g.pool != nil {
			g.pool.Add(t.Instruction)
		}
		st.OutBytes += g.tail[0].Bytes
		g.tail = g.tail[1:]
	}
	if len(g.tail) > 0 {
		// The whole answer matched; the tail goes on into the next request.
		return nil, nil
	}
	rest := cands[i:]
	var kept []cand
	if g.pool == nil {
		for _, t := range rest {
			kept = append(kept, cand{t, -1})
		}
	} else if len(rest) > 0 {
		// Parallel, with the same decisions as one by one.
		texts := make([]string, len(rest))
		for k, t := range rest {
			texts[k] = t.Instruction
		}
		for k, r := range g.pool.CheckBatch(texts, true, g.o.Workers) {
			if !r.Keep {
				st.Discarded[ReasonDuplicate]++
				continue
			}
			kept = append(kept, cand{rest[k], r.Index})
		}
	}
	if n := max(g.o.Target-st.Kept, 0); len(kept) > n {
		st.Surplus += len(kept) - n
		kept = kept[:n]
	}
	lines := g.encode(kept)
	st.Kept += len(kept)
	return lines, nil
}

// encode renders the kept records, annotating them in parallel (the pool
// is only read here).
func (g *Generator) encode(kept []cand) []byte {
	recs := make([][]byte, len(kept))
	var wg sync.WaitGroup
	sem := make(chan struct{}, g.o.Workers)
	for i, c := range kept {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer cli.Guard()
			defer func() { <-sem; wg.Done() }()
			b := make([]byte, 0, 256)
			b = append(b, `{"instruction":`...)
			b = jsonl.AppendString(b, c.t.Instruction)
			b = append(b, `,"input":`...)
			b = jsonl.AppendString(b, c.t.Input)
			b = append(b, `,"output":`...)
			b = jsonl.AppendString(b, c.t.Output)
			if g.pool != nil && g.o.Annotate && c.index >= 0 {
				top, avg := g.pool.SimilarAt(c.t.Instruction, g.o.TopK, c.index)
				b = append(b, `,"most_similar_instructions":{`...)
				seen := map[string]bool{}
				for _, m := range top {
					if seen[m.Text] {
						continue
					}
					if len(seen) > 0 {
						b = append(b, ',')
					}
					seen[m.Text] = true
					b = jsonl.AppendString(b, m.Text)
					b = append(b, ':')
					b = appendFloat(b, m.Score)
				}
				b = append(b, `},"avg_similarity_score":`...)
				b = appendFloat(b, avg)
			}
			b = append(b, "}\n"...)
			recs[i] = b
		}()
	}
	wg.Wait()
	var out []byte
	for _, r := range recs {
		out = append(out, r...)
	}
	return out
}

// appendFloat writes a float as Python's json does (shortest repr, ".0"
// on whole numbers).
func appendFloat(b []byte, x float64) []byte {
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return append(b, s...)
}

package generate

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Finish reasons (OpenAI's words).
const (
	FinishStop   = "stop"   // EOS or a stop string
	FinishLength = "length" // max new tokens or the context is full
)

// Request is one completion to compute.
type Request struct {
	Prompt       []int32 // ids, BOS included
	MaxNewTokens int     // > 0
	Stop         []string
	Sample       SampleParams
	// OnText, when set, receives the completion's text as it becomes
	// final (complete characters, never part of a stop string). It runs on
	// the decoding goroutine and must not block for long.
	OnText func(delta string)
	// Ctx cancels the request (nil: never).
	Ctx context.Context
}

// Result is a finished completion.
type Result struct {
	Text             string
	IDs              []int32 // generated ids (without EOS)
	FinishReason     string
	PromptTokens     int
	CompletionTokens int // ids sampled, EOS included when it ended the completion
	Err              error
}

// ErrPromptTooLong is returned for a prompt that leaves no room in the
// model's context.
var ErrPromptTooLong = errors.New("prompt too long")

// job is a request being decoded.
type job struct {
	req     *Request
	seq     Seq
	smp     *Sampler
	dt      *detok
	text    strings.Builder
	next    int32
	started bool
	done    bool
	res     Result
}

// newJob checks a request against the model and prepares its state.
func (m *Model) newJob(req *Request) (*job, error) {
	if len(req.Prompt) == 0 {
		return nil, errors.New("empty prompt")
	}
	if len(req.Prompt) >= m.MaxLen {
		return nil, fmt.Errorf("%w: %d tokens, the model's context is %d", ErrPromptTooLong, len(req.Prompt), m.MaxLen)
	}
	if req.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("max new tokens %d must be positive", req.MaxNewTokens)
	}
	if err := req.Sample.Check(); err != nil {
		return nil, err
	}
	V := int32(m.LM.VocabSize())
	for _, t := range req.Prompt {
		if t < 0 || t >= V {
			return nil, fmt.Errorf("prompt token id %d outside the vocabulary [0,%d)", t, V)
		}
	}
	capN := min(m.MaxLen, len(req.Prompt)+req.MaxNewTokens)
	seq, err := m.LM.NewSeq(capN)
	if err != nil {
		return nil, err
	}
	return &job{req: req, seq: seq, smp: NewSampler(req.Sample, req.Prompt), dt: newDetok(m.Tok, req.Stop),
		res: Result{PromptTokens: len(req.Prompt)}}, nil
}

func (j *job) cancelled() bool {
	return j.req.Ctx != nil && j.req.Ctx.Err() != nil
}

func (j *job) emit(s string) {
	if s == "" {
		return
	}
	j.text.WriteString(s)
	if j.req.OnText != nil {
		j.req.OnText(s)
	}
}

func (j *job) finish(reason string, err error) {
	if j.done {
		return
	}
	if err == nil && reason != "" {
		j.emit(j.dt.finish())
	}
	j.done = true
	j.res.FinishReason = reason
	j.res.Err = err
	j.res.Text = j.text.String()
	j.res.CompletionTokens = len(j.res.IDs)
	if reason == FinishStop && !j.dt.stopped {
		j.res.CompletionTokens++ // the EOS
	}
}

// accept handles a sampled token.
func (m *Model) accept(j *job, tok int32) {
	if tok == m.EOS {
		j.finish(FinishStop, nil)
		return
	}
	j.res.IDs = append(j.res.IDs, tok)
	delta, stop := j.dt.push(tok)
	j.emit(delta)
	switch {
	case stop:
		j.finish(FinishStop, nil)
	case len(j.res.IDs) >= j.req.MaxNewTokens || j.seq.Len() >= j.seq.Cap():
		j.finish(FinishLength, nil)
	default:
		j.next = tok
	}
}

// step advances every unfinished job by one token: jobs not started yet
// are prefilled one by one, the others decode together through FeedBatch.
func (m *Model) step(jobs []*job) {
	V := m.LM.VocabSize()
	var batch []*job
	for _, j := range jobs {
		if j.done {
			continue
		}
		if j.cancelled() {
			j.finish("", j.req.Ctx.Err())
			continue
		}
		if !j.started {
			j.started = true
			logits, err := m.LM.Feed(j.seq, j.req.Prompt)
			if err != nil {
				j.finish("", err)
				continue
			}
			m.accept(j, j.smp.Sample(logits))
			continue
		}
		batch = append(batch, j)
	}
	if len(batch) == 0 {
		return
	}
	seqs := make([]Seq, len(batch))
	toks := make([]int32, len(batch))
	for i, j := range batch {
		seqs[i], toks[i] = j.seq, j.next
	}
	logits, err := m.LM.FeedBatch(seqs, toks)
	if err != nil {
		for _, j := range batch {
			j.finish("", err)
		}
		return
	}
	for i, j := range batch {
		m.accept(j, j.smp.Sample(logits[i*V:(i+1)*V]))
	}
}

// Generate runs one request to the end on the calling goroutine.
func (m *Model) Generate(req *Request) Result {
	j, err := m.newJob(req)
	if err != nil {
		return Result{PromptTokens: len(req.Prompt), Err: err}
	}
	for !j.done {
		m.step([]*job{j})
	}
	return j.res
}

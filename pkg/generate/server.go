package generate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alpaca-go/alpaca/pkg/prompt"
)

// ServerConfig are the server's limits and defaults.
type ServerConfig struct {
	ModelID       string // the id /v1/models lists (default: the directory's name)
	MaxBatch      int    // sequences decoded together
	MaxQueue      int    // requests waiting for a slot; more get 429
	MaxBodyBytes  int64  // request body limit (413 above)
	MaxTokens     int    // cap on max_tokens (400 above)
	MaxPrompts    int    // prompts × n per request
	DefaultTokens int    // max_tokens when the request has none
	Seed          uint64 // seeds of requests without one: Seed + request number
	Template      *prompt.Template
	Logf          func(format string, args ...any)
}

// Server is the OpenAI-compatible HTTP front of a Model. One goroutine
// (started by Start) owns the model and decodes every active request together.
type Server struct {
	m       *Model
	cfg     ServerConfig
	queue   chan *pending
	nreq    atomic.Uint64
	mux     *http.ServeMux
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	completed, cancelled atomic.Int64
	started              atomic.Bool
}

// Completed is the number of completions that ran to their end.
func (s *Server) Completed() int64 { return s.completed.Load() }

// Cancelled is the number of completions stopped by their client leaving.
func (s *Server) Cancelled() int64 { return s.cancelled.Load() }

// pending is a request in the queue or being decoded.
type pending struct {
	req    *Request
	index  int
	events chan event
}

type event struct {
	delta string
	res   *Result
}

// NewServer makes a server for m; Start begins decoding.
func NewServer(m *Model, cfg ServerConfig) *Server {
	if cfg.ModelID == "" {
		cfg.ModelID = m.Name
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 16
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 2048
	}
	if cfg.MaxPrompts <= 0 {
		cfg.MaxPrompts = 16
	}
	if cfg.DefaultTokens <= 0 {
		cfg.DefaultTokens = 256
	}
	cfg.DefaultTokens = min(cfg.DefaultTokens, cfg.MaxTokens)
	if cfg.Template == nil {
		cfg.Template, _ = prompt.Builtin("alpaca")
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	s := &Server{m: m, cfg: cfg, queue: make(chan *pending, cfg.MaxQueue), stop: make(chan struct{}), stopped: make(chan struct{})}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/v1/models", s.models)
	s.mux.HandleFunc("/v1/completions", s.completions)
	s.mux.HandleFunc("/v1/chat/completions", s.chatCompletions)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s (see /v1/models, /v1/completions, /v1/chat/completions)", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Start runs the decode loop in a goroutine.
func (s *Server) Start() {
	if s.started.CompareAndSwap(false, true) {
		go s.run()
	}
}

// Close stops the decode loop (after the requests it holds finish or are
// cancelled) and waits for it. Without Start it does nothing.
func (s *Server) Close() {
	if !s.started.Load() {
		return
	}
	s.once.Do(func() { close(s.stop) })
	<-s.stopped
}

// run is the decode loop: it admits queued requests up to MaxBatch, steps
// all active ones together, and delivers text and results.
func (s *Server) run() {
	defer close(s.stopped)
	var active []*pending
	var jobs []*job
	admit := func(p *pending) {
		j, err := s.m.newJob(p.req)
		if err != nil {
			p.events <- event{res: &Result{Err: err, PromptTokens: len(p.req.Prompt)}}
			return
		}
		active = append(active, p)
		jobs = append(jobs, j)
	}
	for {
		if len(active) == 0 {
			select {
			case p := <-s.queue:
				admit(p)
			case <-s.stop:
				return
			}
		}
	fill:
		for len(active) < s.cfg.MaxBatch {
			select {
			case p := <-s.queue:
				admit(p)
			default:
				break fill
			}
		}
		if len(active) == 0 {
			continue
		}
		s.m.step(jobs)
		k := 0
		for i, j := range jobs {
			if j.done {
				r := j.res
				if r.Err != nil && j.cancelled() {
					s.cancelled.Add(1)
				} else if r.Err == nil {
					s.completed.Add(1)
				}
				active[i].events <- event{res: &r}
				continue
			}
			active[k], jobs[k] = active[i], j
			k++
		}
		active, jobs = active[:k], jobs[:k]
	}
}

// --- wire types (OpenAI's) ---

type stopField []string

func (s *stopField) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New(`"stop" must be a string or an array of strings`)
	}
	*s = many
	return nil
}

type promptField []string

func (p *promptField) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*p = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New(`"prompt" must be a string or an array of strings`)
	}
	*p = many
	return nil
}

type sampling struct {
	Model             string    `json:"model"`
	MaxTokens         *int      `json:"max_tokens"`
	MaxCompletion     *int      `json:"max_completion_tokens"`
	Temperature       *float64  `json:"temperature"`
	TopP              *float64  `json:"top_p"`
	TopK              *int      `json:"top_k"`
	RepetitionPenalty *float64  `json:"repetition_penalty"`
	N                 *int      `json:"n"`
	Stop              stopField `json:"stop"`
	Stream            bool      `json:"stream"`
	Seed              *int64    `json:"seed"`
	Echo              bool      `json:"echo"`
}

type completionRequest struct {
	sampling
	Prompt promptField `json:"prompt"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	sampling
	Messages []chatMessage `json:"messages"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type apiErr struct {
	status int
	code   string
	msg    string
}

func (e *apiErr) Error() string { return e.msg }

func badRequest(code, format string, args ...any) *apiErr {
	return &apiErr{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	typ := "invalid_request_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status >= 500:
		typ = "server_error"
	}
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apiErr
	if errors.As(err, &ae) {
		apiError(w, ae.status, ae.code, ae.msg)
		return
	}
	apiError(w, http.StatusInternalServerError, "internal_error", err.Error())
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	writeJSON(w, map[string]any{"object": "list", "data": []map[string]any{{
		"id": s.cfg.ModelID, "object": "model", "created": 0, "owned_by": "alpaca-go",
		"context_length": s.m.MaxLen,
	}}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON body within the size limit.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if r.Method != http.MethodPost {
		return &apiErr{http.StatusMethodNotAllowed, "method_not_allowed", "use POST"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &apiErr{http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes)}
		}
		return badRequest("bad_body", "reading the body: %v", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("invalid_json", "the body is not valid JSON for this endpoint: %v", err)
	}
	return nil
}

// plan turns the sampling fields into a request template and a count.
func (s *Server) plan(sm *sampling) (maxTok, n int, sp SampleParams, err error) {
	maxTok = s.cfg.DefaultTokens
	if sm.MaxCompletion != nil {
		maxTok = *sm.MaxCompletion
	}
	if sm.MaxTokens != nil {
		maxTok = *sm.MaxTokens
	}
	if maxTok <= 0 || maxTok > s.cfg.MaxTokens {
		return 0, 0, sp, badRequest("invalid_max_tokens", "max_tokens %d outside 1..%d", maxTok, s.cfg.MaxTokens)
	}
	n = 1
	if sm.N != nil {
		n = *sm.N
	}
	if n <= 0 || n > s.cfg.MaxPrompts {
		return 0, 0, sp, badRequest("invalid_n", "n %d outside 1..%d", n, s.cfg.MaxPrompts)
	}
	sp = SampleParams{Temperature: 1, TopP: 1, RepetitionPenalty: 1}
	if sm.Temperature != nil {
		sp.Temperature = *sm.Temperature
	}
	if sm.TopP != nil {
		sp.TopP = *sm.TopP
	}
	if sm.TopK != nil {
		sp.TopK = *sm.TopK
	}
	if sm.RepetitionPenalty != nil {
		sp.RepetitionPenalty = *sm.RepetitionPenalty
	}
	if sm.Seed != nil {
		sp.Seed = uint64(*sm.Seed)
	} else {
		sp.Seed = s.cfg.Seed + s.nreq.Add(1)<<20
	}
	if err := sp.Check(); err != nil {
		return 0, 0, sp, badRequest("invalid_sampling", "%v", err)
	}
	if sm.Echo {
		return 0, 0, sp, badRequest("unsupported", "echo is not supported")
	}
	if len(sm.Stop) > 4 {
		return 0, 0, sp, badRequest("invalid_stop", "at most 4 stop strings")
	}
	return maxTok, n, sp, nil
}

// submit tokenizes the prompts, checks them against the context and
// queues one request per prompt × n; all or none are queued.
func (s *Server) submit(ctx context.Context, prompts []string, maxTok, n int, sp SampleParams, stops []string) ([]*pending, error) {
	if len(prompts) == 0 {
		return nil, badRequest("invalid_prompt", "no prompt")
	}
	if len(prompts)*n > s.cfg.MaxPrompts {
		return nil, badRequest("too_many_prompts", "%d prompts × n %d over the limit of %d completions per request", len(prompts), n, s.cfg.MaxPrompts)
	}
	var ps []*pending
	for i, text := range prompts {
		ids := s.m.EncodePrompt(text)
		if len(ids) >= s.m.MaxLen {
			return nil, badRequest("context_length_exceeded", "prompt %d is %d tokens; the model's context is %d", i, len(ids), s.m.MaxLen)
		}
		mt := min(maxTok, s.m.MaxLen-len(ids))
		for k := 0; k < n; k++ {
			p := sp
			p.Seed = sp.Seed + uint64(i*n+k)
			ps = append(ps, &pending{index: i*n + k, events: make(chan event, mt+4),
				req: &Request{Prompt: ids, MaxNewTokens: mt, Stop: stops, Sample: p, Ctx: ctx}})
		}
	}
	if len(ps) > cap(s.queue)-len(s.queue) {
		return nil, &apiErr{http.StatusTooManyRequests, "queue_full", fmt.Sprintf("the server is busy (%d requests queued); retry later", len(s.queue))}
	}
	for _, p := range ps {
		p := p
		p.req.OnText = func(d string) { p.events <- event{delta: d} }
		select {
		case s.queue <- p:
		default:
			// raced with another request: what was queued is cancelled by
			// the caller's context
			return nil, &apiErr{http.StatusTooManyRequests, "queue_full", "the server is busy; retry later"}
		}
	}
	return ps, nil
}

func newID(prefix string) string {
	return fmt.Sprintf("%s-%x", prefix, time.Now().UnixNano())
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if req.Prompt == nil {
		writeErr(w, badRequest("invalid_prompt", `"prompt" is required`))
		return
	}
	s.serve(w, r, &req.sampling, req.Prompt, false)
}

// chatPrompt renders messages with the template: system messages first as
// plain text, each user message as an instruction, each assistant message
// as the answer of the instruction before it; the last message must be
// the user's.
func (s *Server) chatPrompt(msgs []chatMessage) (string, error) {
	if len(msgs) == 0 {
		return "", badRequest("invalid_messages", `"messages" is empty`)
	}
	if msgs[len(msgs)-1].Role != "user" {
		return "", badRequest("invalid_messages", "the last message must have role user")
	}
	var sb strings.Builder
	var pendingUser *string
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer":
			sb.WriteString(m.Content)
			sb.WriteString("\n\n")
		case "user":
			if pendingUser != nil {
				sb.WriteString(s.cfg.Template.Render(*pendingUser, ""))
				sb.WriteString("\n\n")
			}
			c := m.Content
			pendingUser = &c
		case "assistant":
			if pendingUser == nil {
				return "", badRequest("invalid_messages", "message %d: an assistant message must follow a user message", i)
			}
			sb.WriteString(s.cfg.Template.Render(*pendingUser, ""))
			sb.WriteString(m.Content)
			sb.WriteString("\n\n")
			pendingUser = nil
		default:
			return "", badRequest("invalid_messages", "message %d: role %q not supported (system, user, assistant)", i, m.Role)
		}
	}
	sb.WriteString(s.cfg.Template.Render(*pendingUser, ""))
	return sb.String(), nil
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		writeErr(w, err)
		return
	}
	text, err := s.chatPrompt(req.Messages)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.serve(w, r, &req.sampling, []string{text}, true)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, sm *sampling, prompts []string, chat bool) {
	maxTok, n, sp, err := s.plan(sm)
	if err != nil {
		writeErr(w, err)
		return
	}
	if sm.Stream && len(prompts)*n != 1 {
		writeErr(w, badRequest("unsupported", "stream needs one prompt and n = 1"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel() // a handler that returns early cancels what it queued
	ps, err := s.submit(ctx, prompts, maxTok, n, sp, sm.Stop)
	if err != nil {
		writeErr(w, err)
		return
	}
	id, created := newID("cmpl"), time.Now().Unix()
	model := s.cfg.ModelID
	t0 := time.Now()
	if sm.Stream {
		res := s.stream(w, r, ps[0], id, created, model, chat)
		if res != nil {
			s.cfg.Logf("%s %s stream: %d+%d tokens, %s, %.2fs", r.Method, r.URL.Path, res.PromptTokens, res.CompletionTokens, res.FinishReason, time.Since(t0).Seconds())
		}
		return
	}
	results := make([]*Result, len(ps))
	for i, p := range ps {
		for results[i] == nil {
			select {
			case ev := <-p.events:
				results[i] = ev.res
			case <-r.Context().Done():
				return // the client is gone; cancel() stops the work
			}
		}
	}
	var u usage
	var choices []map[string]any
	for i, res := range results {
		if res.Err != nil {
			if r.Context().Err() != nil {
				return // the client is gone
			}
			if errors.Is(res.Err, ErrPromptTooLong) {
				writeErr(w, badRequest("context_length_exceeded", "%v", res.Err))
				return
			}
			writeErr(w, res.Err)
			return
		}
		if i%n == 0 {
			u.PromptTokens += res.PromptTokens
		}
		u.CompletionTokens += res.CompletionTokens
		if chat {
			choices = append(choices, map[string]any{"index": i, "message": map[string]any{"role": "assistant", "content": res.Text}, "finish_reason": res.FinishReason})
		} else {
			choices = append(choices, map[string]any{"index": i, "text": res.Text, "finish_reason": res.FinishReason, "logprobs": nil})
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	obj := "text_completion"
	if chat {
		obj = "chat.completion"
	}
	writeJSON(w, map[string]any{"id": id, "object": obj, "created": created, "model": model, "choices": choices, "usage": u})
	s.cfg.Logf("%s %s: %d completions, %d+%d tokens, %.2fs", r.Method, r.URL.Path, len(results), u.PromptTokens, u.CompletionTokens, time.Since(t0).Seconds())
}

// stream sends server-sent events as the text comes; it returns the
// result when the completion ended normally.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, p *pending, id string, created int64, model string, chat bool) *Result {
	fl, ok := w.(http.Flusher)
	if !ok {
		apiError(w, http.StatusInternalServerError, "internal_error", "streaming unsupported by the connection")
		return nil
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	obj := "text_completion"
	if chat {
		obj = "chat.completion.chunk"
	}
	send := func(delta string, finish any, first bool) error {
		var choice map[string]any
		if chat {
			d := map[string]any{}
			if first {
				d["role"] = "assistant"
			}
			if delta != "" || !first {
				d["content"] = delta
			}
			choice = map[string]any{"index": 0, "delta": d, "finish_reason": finish}
		} else {
			choice = map[string]any{"index": 0, "text": delta, "finish_reason": finish, "logprobs": nil}
		}
		b, _ := json.Marshal(map[string]any{"id": id, "object": obj, "created": created, "model": model, "choices": []any{choice}})
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		fl.Flush()
		return nil
	}
	if chat {
		if send("", nil, true) != nil {
			return nil
		}
	}
	for {
		select {
		case ev := <-p.events:
			if ev.res != nil {
				if ev.res.Err != nil {
					b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": ev.res.Err.Error(), "type": "server_error"}})
					fmt.Fprintf(w, "data: %s\n\n", b)
					fl.Flush()
					return nil
				}
				if send("", ev.res.FinishReason, false) != nil {
					return nil
				}
				fmt.Fprint(w, "data: [DONE]\n\n")
				fl.Flush()
				return ev.res
			}
			if send(ev.delta, nil, false) != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

// ListenAndServe serves on addr until ctx is cancelled, then shuts down
// gracefully: no new connections, requests in flight finish (up to
// grace), then the decode loop stops.
func (s *Server) ListenAndServe(ctx context.Context, addr string, grace time.Duration, ready func(interface{ String() string })) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	s.Start()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = hs.Shutdown(sctx)
	if err != nil {
		hs.Close() // cancels the requests still running
	}
	s.Close()
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// Package teachersim is a small OpenAI-compatible teacher for tests, demos
// and benchmarks of seedgen. It answers /v1/completions and
// /v1/chat/completions with numbered instruction lists drawn from a pool of
// instruction/input/output records, formatted as a teacher model continues a
// self-instruct prompt, honouring stop sequences, max_tokens (finish_reason
// "length" when cut) and n. Faults can be injected: latency, 429 with
// Retry-After, 500, dropped connections, malformed JSON, truncated bodies,
// context-length errors and malformed blocks.
//
// Tokens are counted approximately as one per 4 bytes of text (rounded up).
package teachersim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
)

// Config sets up a Server.
type Config struct {
	Pool          []selfinstruct.Task
	Model         string        // model name reported (any name is accepted)
	Seed          uint64        // answers and faults are drawn from it
	Sequential    bool          // draw the pool in a seeded permutation, each item once per pass (benchmarks); default: drawn from a hash of the prompt, so the same prompt always gets the same answer
	MaxTasks      int           // the list ends at this number (default 20)
	Latency       time.Duration // added to every answer (plus up to 50% random)
	ErrorRate     float64       // fraction of requests answered 429 (with Retry-After) or 500, half each
	RetryAfter    time.Duration // Retry-After sent with 429 (whole seconds in Retry-After, exact in retry-after-ms)
	DropRate      float64       // fraction of connections closed without an answer
	MalformedRate float64       // fraction of 200 answers whose body is not JSON
	TruncateRate  float64       // fraction of 200 answers cut in the middle of the body
	BadBlockRate  float64       // fraction of generated blocks missing a part
	ContextLength int           // prompt+max_tokens above it gets a 400 context_length_exceeded (0: no limit)
	APIKey        string        // when set, requests must carry "Authorization: Bearer KEY"
}

// Stats counts what the server did.
type Stats struct {
	Requests, OK, Errors429, Errors500, Dropped, Malformed, Truncated, ContextErrors, Unauthorized atomic.Int64
}

// Server is the simulator; it is an http.Handler.
type Server struct {
	cfg    Config
	Stats  Stats
	mu     sync.Mutex
	rng    *rand.Rand // faults
	perm   []int      // sequential mode
	cursor int
	pass   uint64 // sequential passes started
	mux    *http.ServeMux
}

// New makes a Server.
func New(cfg Config) (*Server, error) {
	if len(cfg.Pool) == 0 {
		return nil, fmt.Errorf("teachersim: empty pool")
	}
	if cfg.MaxTasks <= 0 {
		cfg.MaxTasks = 20
	}
	if cfg.Model == "" {
		cfg.Model = "teachersim"
	}
	s := &Server{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
	if cfg.Sequential {
		s.newPass()
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/v1/completions", s.completions)
	s.mux.HandleFunc("/v1/chat/completions", s.chat)
	s.mux.HandleFunc("/v1/models", s.models)
	return s, nil
}

func (s *Server) newPass() {
	r := rand.New(rand.NewPCG(s.cfg.Seed, 1000+s.pass))
	s.perm = r.Perm(len(s.cfg.Pool))
	s.cursor = 0
	s.pass++
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Tokens is the simulator's token count of a text.
func Tokens(s string) int { return (len(s) + 3) / 4 }

type completionReq struct {
	Model     string          `json:"model"`
	Prompt    json.RawMessage `json:"prompt"`
	Messages  []chatMsg       `json:"messages"`
	MaxTokens int             `json:"max_tokens"`
	Stop      json.RawMessage `json:"stop"`
	N         int             `json:"n"`
	Stream    bool            `json:"stream"`
}

type chatMsg struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"object": "list", "data": []map[string]any{{"id": s.cfg.Model, "object": "model", "owned_by": "teachersim"}}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

func apiError(w http.ResponseWriter, code int, typ, errCode, msg string) {
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if errCode != "" {
		e["code"] = errCode
	}
	writeJSON(w, code, map[string]any{"error": e})
}

// fault decides, before the work, whether this request fails; it returns
// true when the answer was already written.
func (s *Server) fault(w http.ResponseWriter, r *http.Request) bool {
	s.Stats.Requests.Add(1)
	s.mu.Lock()
	lat := s.cfg.Latency
	if lat > 0 {
		lat += time.Duration(s.rng.Int64N(int64(lat)/2 + 1))
	}
	u := s.rng.Float64()
	s.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-r.Context().Done():
			return true
		}
	}
	if s.cfg.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.cfg.APIKey {
		s.Stats.Unauthorized.Add(1)
		apiError(w, 401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.")
		return true
	}
	if r.Method != http.MethodPost {
		apiError(w, 405, "invalid_request_error", "", "use POST")
		return true
	}
	switch {
	case u < s.cfg.ErrorRate/2:
		s.Stats.Errors429.Add(1)
		ra := s.cfg.RetryAfter
		w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
		w.Header().Set("retry-after-ms", strconv.FormatInt(ra.Milliseconds(), 10))
		apiError(w, 429, "requests", "rate_limit_exceeded", "Rate limit reached (simulated). Please try again later.")
		return true
	case u < s.cfg.ErrorRate:
		s.Stats.Errors500.Add(1)
		apiError(w, 500, "server_error", "", "The server had an error while processing your request (simulated).")
		return true
	case u < s.cfg.ErrorRate+s.cfg.DropRate:
		s.Stats.Dropped.Add(1)
		hijackClose(w)
		return true
	}
	return false
}

// hijackClose closes the connection without an answer.
func hijackClose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// send writes a 200 answer, possibly malformed or truncated.
func (s *Server) send(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	s.mu.Lock()
	u := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case u < s.cfg.MalformedRate:
		s.Stats.Malformed.Add(1)
		b = append([]byte(`{"id": "cmpl-sim", "choices": [{"text": <html>oops`), '\n')
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.Write(b)
		return
	case u < s.cfg.MalformedRate+s.cfg.TruncateRate:
		s.Stats.Truncated.Add(1)
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		c, bw, err := hj.Hijack()
		if err != nil {
			return
		}
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(b))
		bw.Write(b[:len(b)/2])
		bw.Flush()
		c.Close()
		return
	}
	s.Stats.OK.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(200)
	w.Write(b)
}

func parseReq(w http.ResponseWriter, body []byte) (*completionReq, []string, bool) {
	var req completionReq
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, 400, "invalid_request_error", "", "could not parse the JSON body: "+err.Error())
		return nil, nil, false
	}
	if req.Stream {
		apiError(w, 400, "invalid_request_error", "", "teachersim does not stream")
		return nil, nil, false
	}
	var stop []string
	if len(req.Stop) > 0 && string(req.Stop) != "null" {
		var one string
		if json.Unmarshal(req.Stop, &one) == nil {
			stop = []string{one}
		} else if err := json.Unmarshal(req.Stop, &stop); err != nil {
			apiError(w, 400, "invalid_request_error", "", "stop must be a string or a list of strings")
			return nil, nil, false
		}
	}
	if req.N <= 0 {
		req.N = 1
	}
	if req.MaxTokens <= 0 {
		req.MaxTokens = 16 // the OpenAI completions default
	}
	return &req, stop, true
}

func (s *Server) contextCheck(w http.ResponseWriter, promptTokens, maxTokens int) bool {
	if s.cfg.ContextLength > 0 && promptTokens+maxTokens > s.cfg.ContextLength {
		s.Stats.ContextErrors.Add(1)
		apiError(w, 400, "invalid_request_error", "context_length_exceeded", fmt.Sprintf(
			"This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; %d for the completion). Please reduce your prompt; or completion length.",
			s.cfg.ContextLength, promptTokens+maxTokens, promptTokens, maxTokens))
		return false
	}
	return true
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	// Read the body first: the server then notices a client going away
	// (and cancels r.Context()) during the simulated latency.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		return
	}
	if s.fault(w, r) {
		return
	}
	req, stop, ok := parseReq(w, body)
	if !ok {
		return
	}
	var prompts []string
	var one string
	if json.Unmarshal(req.Prompt, &one) == nil {
		prompts = []string{one}
	} else if err := json.Unmarshal(req.Prompt, &prompts); err != nil || len(prompts) == 0 {
		apiError(w, 400, "invalid_request_error", "", "prompt must be a string or a non-empty list of strings")
		return
	}
	var u usage
	maxPrompt := 0
	for _, p := range prompts {
		u.PromptTokens += Tokens(p)
		maxPrompt = max(maxPrompt, Tokens(p))
	}
	if !s.contextCheck(w, maxPrompt, req.MaxTokens) {
		return
	}
	var choices []map[string]any
	for pi, p := range prompts {
		for j := 0; j < req.N; j++ {
			text, fin := s.answer(p, j, stop, req.MaxTokens, false)
			u.CompletionTokens += Tokens(text)
			choices = append(choices, map[string]any{"text": text, "index": pi*req.N + j, "finish_reason": fin, "logprobs": nil})
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	s.send(w, map[string]any{"id": "cmpl-sim", "object": "text_completion", "created": time.Now().Unix(), "model": req.Model, "choices": choices, "usage": u})
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	// Read the body first: the server then notices a client going away
	// (and cancels r.Context()) during the simulated latency.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		return
	}
	if s.fault(w, r) {
		return
	}
	req, stop, ok := parseReq(w, body)
	if !ok {
		return
	}
	if len(req.Messages) == 0 {
		apiError(w, 400, "invalid_request_error", "", "messages must not be empty")
		return
	}
	var all strings.Builder
	for _, m := range req.Messages {
		all.WriteString(m.Role + ": " + m.Content + "\n")
	}
	p := req.Messages[len(req.Messages)-1].Content
	u := usage{PromptTokens: Tokens(all.String())}
	if !s.contextCheck(w, u.PromptTokens, req.MaxTokens) {
		return
	}
	var choices []map[string]any
	for j := 0; j < req.N; j++ {
		text, fin := s.answer(p, j, stop, req.MaxTokens, true)
		u.CompletionTokens += Tokens(text)
		choices = append(choices, map[string]any{"index": j, "message": chatMsg{Role: "assistant", Content: text}, "finish_reason": fin})
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	s.send(w, map[string]any{"id": "chatcmpl-sim", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model, "choices": choices, "usage": u})
}

var numRE = regexp.MustCompile(`([0-9]+)\s?\.\s?Instruction:`)
var tailRE = regexp.MustCompile(`[0-9]+\s?\.\s?Instruction:\s*$`)

// answer writes the teacher's text for one prompt: tasks numbered from
// the one after the last task of the prompt up to MaxTasks. A prompt ending
// in "N. Instruction:" is continued (completion style); otherwise, or in
// chat, the answer restates "N. Instruction:".
func (s *Server) answer(prompt string, choice int, stop []string, maxTokens int, chat bool) (string, string) {
	next := 1
	for _, m := range numRE.FindAllStringSubmatch(prompt, -1) {
		if n, err := strconv.Atoi(m[1]); err == nil && n+1 > next {
			next = n + 1
		}
	}
	opened := tailRE.MatchString(prompt)
	if opened {
		next-- // the prompt already opened this task
	}
	cont := opened && !chat // chat answers restate "N. Instruction:"
	h := sha256.Sum256([]byte(prompt))
	rng := rand.New(rand.NewPCG(s.cfg.Seed^binary.LittleEndian.Uint64(h[:8]), binary.LittleEndian.Uint64(h[8:16])+uint64(choice)))
	g := gen{stop: stop, limit: maxTokens * 4}
	for n := next; n <= s.cfg.MaxTasks; n++ {
		num := strconv.Itoa(n)
		if n > next {
			if g.add("\n###\n") || g.add(num+". Instruction: ") {
				break
			}
		} else if !cont {
			if g.add(num + ". Instruction: ") {
				break
			}
		} else if g.add(" ") {
			break
		}
		t := s.cfg.Pool[s.draw(rng)]
		in := t.Input
		if strings.TrimSpace(in) == "" {
			in = "<noinput>"
		}
		bad := rng.Float64() < s.cfg.BadBlockRate
		body := oneLine(t.Instruction) + "\n" + num + ". Input:\n" + in + "\n"
		if !bad {
			body += num + ". Output:\n" + t.Output + "\n"
		}
		if g.add(body) {
			break
		}
	}
	return g.b.String(), g.fin()
}

// gen accumulates an answer, stopping at the first stop sequence or at the
// token limit.
type gen struct {
	b      strings.Builder
	stop   []string
	limit  int // bytes
	cutLen bool
	done   bool
}

// add appends s and reports whether the answer ended inside it.
func (g *gen) add(s string) bool {
	prev := g.b.Len()
	g.b.WriteString(s)
	text := g.b.String()
	from := prev
	for _, st := range g.stop {
		from = min(from, max(0, prev-len(st)+1))
	}
	cut := -1
	for _, st := range g.stop {
		if st == "" {
			continue
		}
		if i := strings.Index(text[from:], st); i >= 0 && (cut < 0 || from+i < cut) {
			cut = from + i
		}
	}
	if g.limit < len(text) && (cut < 0 || g.limit < cut) {
		cut = g.limit
		for cut > 0 && text[cut]&0xC0 == 0x80 { // rune boundary
			cut--
		}
		g.cutLen = true
	}
	if cut < 0 {
		return false
	}
	g.b.Reset()
	g.b.WriteString(text[:cut])
	g.done = true
	return true
}

func (g *gen) fin() string {
	if g.cutLen {
		return "length"
	}
	return "stop"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// draw picks a pool item: from the prompt's hash, or the next item of the
// shared permutation in sequential mode (each item once per pass).
func (s *Server) draw(rng *rand.Rand) int {
	if !s.cfg.Sequential {
		return rng.IntN(len(s.cfg.Pool))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cursor >= len(s.perm) {
		s.newPass()
	}
	i := s.perm[s.cursor]
	s.cursor++
	return i
}

// Summary is a one-line account of the stats.
func (s *Server) Summary() string {
	st := &s.Stats
	var b bytes.Buffer
	fmt.Fprintf(&b, "requests %d, ok %d, 429 %d, 500 %d, dropped %d, malformed %d, truncated %d, context errors %d, unauthorized %d",
		st.Requests.Load(), st.OK.Load(), st.Errors429.Load(), st.Errors500.Load(), st.Dropped.Load(), st.Malformed.Load(), st.Truncated.Load(), st.ContextErrors.Load(), st.Unauthorized.Load())
	return b.String()
}

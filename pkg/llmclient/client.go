// Package llmclient calls an OpenAI-compatible teacher through
// github.com/sashabaranov/go-openai, with what long generation jobs need:
// retries with exponential backoff and jitter on 429, 5xx, timeouts, dropped
// connections and unreadable answers, honouring Retry-After; a
// context-length error shrinks max_tokens and retries; and an on-disk cache
// keyed by a hash of the request, so a re-run pays nothing twice.
package llmclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alpaca-go/alpaca/pkg/xio"
	openai "github.com/sashabaranov/go-openai"
)

// Config sets up a Client.
type Config struct {
	BaseURL     string // e.g. http://127.0.0.1:8000/v1 (default https://api.openai.com/v1)
	APIKey      string // never logged
	Model       string
	Chat        bool          // chat completions instead of completions
	Retries     int           // retries after the first attempt (0: none)
	BackoffBase time.Duration // first backoff (default 1s)
	BackoffMax  time.Duration // longest backoff (default 60s); Retry-After may ask for more, up to 10 minutes
	Timeout     time.Duration // per attempt (default 10 minutes)
	CacheDir    string        // "" for no cache
	HTTPClient  *http.Client  // default: a plain client
	Logf        func(format string, args ...any)
	Sleep       func(ctx context.Context, d time.Duration) error // backoff waits (nil: a timer); tests record them
}

// Request is one call: for completions all prompts go in one request
// (the original's "prompts per request"); in chat each prompt is its own
// call with one user message.
type Request struct {
	Prompts     []string
	MaxTokens   int
	Temperature float32
	TopP        float32
	Stop        []string
	N           int // choices per prompt (default 1)
}

// Choice is one answer.
type Choice struct {
	Prompt       int // index into Request.Prompts
	Text         string
	FinishReason string
}

// Result is the answers to a Request and what they cost.
type Result struct {
	Choices          []Choice
	PromptTokens     int
	CompletionTokens int
	Calls            int // HTTP calls made (0 when every answer came from the cache)
	Cached           int // answers taken from the cache
	Retries          int
	Shrunk           int // context-length shrinks
	Refused          int // retries after a refused connection
}

// FatalError is an error retrying cannot fix (bad key, unknown model,
// invalid request): the caller should stop.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Client is safe for concurrent use.
type Client struct {
	cfg   Config
	oa    *openai.Client
	mu    sync.Mutex
	rng   *rand.Rand
	calls atomic.Int64
}

type captureKey struct{}

// capture receives what go-openai does not expose: the status, the
// Retry-After header and the raw body.
type capture struct {
	status     int
	retryAfter time.Duration
	body       []byte
}

type doer struct{ c *http.Client }

func (d doer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.c.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	resp.Body.Close()
	if err == nil && len(body) > MaxBodyBytes {
		return nil, &FatalError{fmt.Errorf("the answer (HTTP %d) is longer than %d MiB; refused (is --base-url a teacher's endpoint?)", resp.StatusCode, MaxBodyBytes>>20)}
	}
	if cp, ok := req.Context().Value(captureKey{}).(*capture); ok {
		cp.status = resp.StatusCode
		cp.retryAfter = parseRetryAfter(resp.Header)
		cp.body = body
	}
	if err != nil {
		return nil, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// MaxBodyBytes caps an answer's body: a completion of a few thousand
// tokens is tens of KB, and an endless or huge body must not grow the
// process without bound.
const MaxBodyBytes = 16 << 20

// DefaultBaseURL is the endpoint used when none is configured.
const DefaultBaseURL = "https://api.openai.com/v1"

// CheckBaseURL checks that u can be an endpoint: an absolute http or https
// URL with a host and, when given, a port from 1 to 65535. Errors say what
// is wrong, for a usage message.
func CheckBaseURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		if p.Scheme == "" {
			return fmt.Errorf("not an absolute URL (want http://HOST[:PORT]/PATH or https://...)")
		}
		return fmt.Errorf("scheme %q: want http or https", p.Scheme)
	}
	if p.Hostname() == "" {
		return fmt.Errorf("no host")
	}
	if port := p.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not in 1..65535", port)
		}
	} else if strings.HasSuffix(p.Host, ":") {
		return fmt.Errorf("empty port")
	}
	if p.User != nil {
		return fmt.Errorf("credentials in the URL are not supported (use --api-key-file)")
	}
	return nil
}

// parseRetryAfter reads retry-after-ms (OpenAI) or Retry-After (seconds or
// an HTTP date).
func parseRetryAfter(h http.Header) time.Duration {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return -1
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return -1
}

// New makes a Client.
func New(cfg Config) *Client {
	cfg.Retries = max(cfg.Retries, 0)
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 60 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Sleep == nil {
		cfg.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	oc.HTTPClient = doer{hc}
	return &Client{cfg: cfg, oa: openai.NewClientWithConfig(oc), rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
}

// Calls is the number of HTTP calls made so far.
func (c *Client) Calls() int64 { return c.calls.Load() }

// Do runs the request: from the cache when it has the answer, else with
// retries. It returns a *FatalError for errors retrying cannot fix, the
// context's error when cancelled, or the last error once retries are spent.
func (c *Client) Do(ctx context.Context, req Request) (*Result, error) {
	if req.N <= 0 {
		req.N = 1
	}
	res := &Result{}
	if c.cfg.Chat {
		for i, p := range req.Prompts {
			one := req
			one.Prompts = []string{p}
			if err := c.do(ctx, one, i, res); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	return res, c.do(ctx, req, 0, res)
}

// wire is the request as sent (and as hashed for the cache).
type wire struct {
	Endpoint    string   `json:"endpoint"`
	Model       string   `json:"model"`
	Prompts     []string `json:"prompts"`
	MaxTokens   int      `json:"max_tokens"`
	Temperature float32  `json:"temperature"`
	TopP        float32  `json:"top_p"`
	Stop        []string `json:"stop"`
	N           int      `json:"n"`
}

// Key is the cache key of a request: a SHA-256 of its canonical JSON
// (endpoint, model, prompts, sampling settings; not the base URL or key).
func (c *Client) Key(req Request) string {
	ep := "completions"
	if c.cfg.Chat {
		ep = "chat/completions"
	}
	b, _ := json.Marshal(wire{ep, c.cfg.Model, req.Prompts, req.MaxTokens, req.Temperature, req.TopP, req.Stop, max(req.N, 1)})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (c *Client) cachePath(key string) string {
	return filepath.Join(c.cfg.CacheDir, key[:2], key+".json")
}

// answer is what both endpoints are reduced to.
type answer struct {
	choices []Choice
	pt, ct  int
}

func decodeAnswer(body []byte, chat bool, first int) (*answer, error) {
	a := &answer{}
	if chat {
		var r openai.ChatCompletionResponse
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, err
		}
		for _, ch := range r.Choices {
			a.choices = append(a.choices, Choice{Prompt: first, Text: ch.Message.Content, FinishReason: string(ch.FinishReason)})
		}
		a.pt, a.ct = r.Usage.PromptTokens, r.Usage.CompletionTokens
	} else {
		var r openai.CompletionResponse
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, err
		}
		for _, ch := range r.Choices {
			a.choices = append(a.choices, Choice{Prompt: ch.Index, Text: ch.Text, FinishReason: ch.FinishReason})
		}
		if r.Usage != nil {
			a.pt, a.ct = r.Usage.PromptTokens, r.Usage.CompletionTokens
		}
	}
	if len(a.choices) == 0 {
		return nil, errors.New("the answer has no choices")
	}
	return a, nil
}

func (c *Client) do(ctx context.Context, req Request, first int, res *Result) error {
	key := c.Key(req)
	if c.cfg.CacheDir != "" {
		if body, err := xio.ReadRegular(c.cachePath(key), MaxBodyBytes); err == nil {
			if a, err := decodeAnswer(body, c.cfg.Chat, first); err == nil {
				c.collect(a, req, res)
				res.Cached++
				return nil
			}
			c.cfg.Logf("cache entry %s is unreadable; asking again", key[:12])
		}
	}
	maxTokens := req.MaxTokens
	for attempt := 0; ; attempt++ {
		body, wait, err := c.call(ctx, req, maxTokens)
		res.Calls++
		if err == nil {
			a, derr := decodeAnswer(body, c.cfg.Chat, first)
			if derr == nil {
				if c.cfg.CacheDir != "" {
					if werr := writeCache(c.cachePath(key), body); werr != nil {
						c.cfg.Logf("cache: %v", werr)
					}
				}
				c.collect(a, req, res)
				return nil
			}
			err = fmt.Errorf("bad answer: %w", derr)
			wait = -1
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe *FatalError
		if errors.As(err, &fe) {
			return err
		}
		var ce *contextLengthError
		if errors.As(err, &ce) {
			n := shrink(maxTokens, ce.msg)
			if n < 1 || n >= maxTokens || res.Shrunk >= 8 {
				return &FatalError{fmt.Errorf("the prompt alone is too long for the model's context: %s", ce.msg)}
			}
			c.cfg.Logf("context length exceeded; max_tokens %d -> %d", maxTokens, n)
			maxTokens = n
			res.Shrunk++
			attempt--
			continue
		}
		var re *refusedError
		if errors.As(err, &re) {
			// Nobody listens at the address: a server being started or
			// restarted gets a few short retries, not minutes of backoff.
			if res.Refused >= RefusedRetries {
				return &FatalError{fmt.Errorf("%v: nothing accepts connections at %s after %d tries (is the teacher server running, and is --base-url right?)", err, c.cfg.BaseURL, res.Refused+1)}
			}
			res.Refused++
			res.Retries++
			d := RefusedBackoff << (res.Refused - 1)
			c.cfg.Logf("%v (retry %d/%d in %v)", err, res.Refused, RefusedRetries, d)
			if err := c.cfg.Sleep(ctx, d); err != nil {
				return err
			}
			attempt--
			continue
		}
		if attempt >= c.cfg.Retries {
			return fmt.Errorf("giving up after %d attempts: %w", attempt+1, err)
		}
		d := c.backoff(attempt, wait)
		res.Retries++
		c.cfg.Logf("%v (retry %d/%d in %v)", err, attempt+1, c.cfg.Retries, d.Round(time.Millisecond))
		if err := c.cfg.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

func (c *Client) collect(a *answer, req Request, res *Result) {
	for _, ch := range a.choices {
		if !c.cfg.Chat {
			ch.Prompt /= req.N // completions number choices prompt*n + j
		}
		res.Choices = append(res.Choices, ch)
	}
	res.PromptTokens += a.pt
	res.CompletionTokens += a.ct
}

// backoff: exponential with equal jitter, at least Retry-After when given.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := float64(c.cfg.BackoffBase) * math.Pow(2, float64(attempt))
	d = math.Min(d, float64(c.cfg.BackoffMax))
	c.mu.Lock()
	j := c.rng.Float64()
	c.mu.Unlock()
	d = d/2 + j*d/2
	if retryAfter >= 0 {
		ra := min(retryAfter, 10*time.Minute)
		// The server said when: wait that long plus a little jitter so that
		// the workers do not come back all at once.
		return ra + time.Duration(j*float64(c.cfg.BackoffBase)/4)
	}
	return time.Duration(d)
}

type contextLengthError struct{ msg string }

func (e *contextLengthError) Error() string { return "context length exceeded: " + e.msg }

type transientError struct {
	err error
}

// refusedError is a refused connection: no server at the address.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }

// A refused connection is retried RefusedRetries times, after
// RefusedBackoff, then twice that, and so on (0.25 + 0.5 + 1 s), then the
// request fails for good (a FatalError, which stops seedgen).
var (
	RefusedRetries = 3
	RefusedBackoff = 250 * time.Millisecond
)

func (e *transientError) Error() string { return e.err.Error() }

// call makes one HTTP call and returns the raw body, the Retry-After (-1
// when none) and a classified error.
func (c *Client) call(ctx context.Context, req Request, maxTokens int) ([]byte, time.Duration, error) {
	cp := &capture{retryAfter: -1}
	actx, cancel := context.WithTimeout(context.WithValue(ctx, captureKey{}, cp), c.cfg.Timeout)
	defer cancel()
	c.calls.Add(1)
	temp := req.Temperature
	if temp == 0 {
		// go-openai omits a zero temperature (omitempty); send the
		// smallest positive one so that greedy decoding is still asked for.
		temp = math.SmallestNonzeroFloat32
	}
	var err error
	if c.cfg.Chat {
		_, err = c.oa.CreateChatCompletion(actx, openai.ChatCompletionRequest{
			Model:       c.cfg.Model,
			Messages:    []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: req.Prompts[0]}},
			MaxTokens:   maxTokens,
			Temperature: temp,
			TopP:        req.TopP,
			Stop:        req.Stop,
			N:           req.N,
		})
	} else {
		var prompt any = req.Prompts
		if len(req.Prompts) == 1 {
			prompt = req.Prompts[0]
		}
		_, err = c.oa.CreateCompletion(actx, openai.CompletionRequest{
			Model:       c.cfg.Model,
			Prompt:      prompt,
			MaxTokens:   maxTokens,
			Temperature: temp,
			TopP:        req.TopP,
			Stop:        req.Stop,
			N:           req.N,
		})
	}
	if err == nil {
		return cp.body, -1, nil
	}
	return nil, cp.retryAfter, c.classify(ctx, err, cp)
}

var ctxLenRE = regexp.MustCompile(`(?i)maximum context length|context_length_exceeded|reduce (the length|your prompt)|context window`)

// classify turns an error into a FatalError, a contextLengthError or a
// retryable error.
func (c *Client) classify(ctx context.Context, err error, cp *capture) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	status := 0
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status = apiErr.HTTPStatusCode
		if ctxLenRE.MatchString(apiErr.Message) || fmt.Sprint(apiErr.Code) == "context_length_exceeded" {
			return &contextLengthError{apiErr.Message}
		}
		err = fmt.Errorf("HTTP %d: %s", status, apiErr.Message)
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
		if ctxLenRE.Match(reqErr.Body) {
			return &contextLengthError{string(reqErr.Body)}
		}
		err = fmt.Errorf("HTTP %d: %s", status, truncate(string(reqErr.Body), 200))
	case errors.Is(err, openai.ErrCompletionUnsupportedModel):
		return &FatalError{fmt.Errorf("model %q is a chat model; use --chat", c.cfg.Model)}
	case errors.Is(err, openai.ErrChatCompletionInvalidModel):
		return &FatalError{fmt.Errorf("model %q has no chat API; drop --chat", c.cfg.Model)}
	}
	switch {
	case status == 0:
		// Transport errors: timeouts, resets, refused, EOF, truncated
		// bodies, undecodable JSON.
		if errors.Is(err, syscall.ECONNREFUSED) {
			return &refusedError{err}
		}
		if isNetOrDecode(err) {
			return &transientError{err}
		}
		return &FatalError{err}
	case status == 408 || status == 409 || status == 429 || status >= 500:
		return &transientError{err}
	case status == 401 || status == 403:
		return &FatalError{fmt.Errorf("%v (check the API key)", err)}
	default:
		return &FatalError{err}
	}
}

func isNetOrDecode(err error) bool {
	var ne net.Error
	var se *json.SyntaxError
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &se)
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

var (
	limitRE     = regexp.MustCompile(`maximum context length is (\d+)`)
	requestedRE = regexp.MustCompile(`requested (\d+) tokens`)
	promptRE    = regexp.MustCompile(`(\d+) (?:in (?:your|the) (?:prompt|messages))`)
)

// shrink picks a smaller max_tokens after a context-length error: what
// fits when the message says the limit and the prompt size, else 80%.
func shrink(maxTokens int, msg string) int {
	atoi := func(re *regexp.Regexp) int {
		if m := re.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
		return -1
	}
	limit, requested, prompt := atoi(limitRE), atoi(requestedRE), atoi(promptRE)
	switch {
	case limit > 0 && prompt >= 0:
		return limit - prompt - 1
	case limit > 0 && requested > limit:
		return maxTokens - (requested - limit) - 1
	}
	return maxTokens * 4 / 5
}

func writeCache(path string, body []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

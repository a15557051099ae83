package llmclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alpaca-go/alpaca/pkg/llmclient"
	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
	"github.com/alpaca-go/alpaca/pkg/teachersim"
)

func pool(t *testing.T) []selfinstruct.Task {
	t.Helper()
	tasks, err := selfinstruct.LoadTasks("../../testdata/teachersim/pool.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

func sim(t *testing.T, cfg teachersim.Config) (*teachersim.Server, string) {
	t.Helper()
	cfg.Pool = pool(t)
	s, err := teachersim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + "/v1"
}

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

const prompt = "Tasks:\n###\n1. Instruction: Say hello.\n1. Input:\n<noinput>\n1. Output:\nHello.\n###\n2. Instruction:"

func req() llmclient.Request {
	return llmclient.Request{Prompts: []string{prompt}, MaxTokens: 3072, Temperature: 1, TopP: 1, Stop: []string{"\n20", "20."}}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	// Every request fails with 429 and Retry-After 3s: all retries must
	// wait at least that long, and the client gives up after Retries.
	s, url := sim(t, teachersim.Config{ErrorRate: 2, RetryAfter: 3 * time.Second})
	_ = s
	var sl sleeps
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "m", Retries: 3, BackoffBase: 10 * time.Millisecond, Sleep: sl.sleep})
	res, err := c.Do(context.Background(), req())
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Fatalf("err = %v", err)
	}
	if res.Retries != 3 || len(sl.d) != 3 {
		t.Fatalf("retries %d, sleeps %v", res.Retries, sl.d)
	}
	for _, d := range sl.d {
		if d < 3*time.Second || d > 3*time.Second+10*time.Millisecond {
			t.Errorf("slept %v, want Retry-After 3s (+ jitter below 10ms/4)", d)
		}
	}
	if got := s.Stats.Errors429.Load() + s.Stats.Errors500.Load(); got != 4 {
		t.Errorf("server saw %d failed requests, want 4", got)
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	_, url := sim(t, teachersim.Config{DropRate: 1})
	var sl sleeps
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "m", Retries: 6, BackoffBase: 100 * time.Millisecond, BackoffMax: 1 * time.Second, Sleep: sl.sleep})
	_, err := c.Do(context.Background(), req())
	if err == nil {
		t.Fatal("dropped connections must fail in the end")
	}
	if len(sl.d) != 6 {
		t.Fatalf("sleeps %v", sl.d)
	}
	for i, d := range sl.d {
		full := min(100*time.Millisecond<<i, time.Second)
		if d < full/2 || d > full {
			t.Errorf("backoff %d = %v, want within [%v, %v]", i, d, full/2, full)
		}
	}
}

func TestFaultsAreRetriedAndCached(t *testing.T) {
	s, url := sim(t, teachersim.Config{ErrorRate: 0.3, DropRate: 0.1, MalformedRate: 0.2, TruncateRate: 0.2, RetryAfter: time.Millisecond, Seed: 3})
	dir := t.TempDir()
	var sl sleeps
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "m", Retries: 30, CacheDir: dir, Sleep: sl.sleep})
	want := ""
	for i := 0; i < 8; i++ {
		r := req()
		r.Prompts = []string{prompt, strings.Replace(prompt, "hello", "hi", 1)}
		res, err := c.Do(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Choices) != 2 || res.Choices[0].Prompt != 0 || res.Choices[1].Prompt != 1 {
			t.Fatalf("choices %+v", res.Choices)
		}
		if !strings.HasPrefix(res.Choices[0].Text, " ") || !strings.Contains(res.Choices[0].Text, "3. Input:") {
			t.Fatalf("text %q", res.Choices[0].Text)
		}
		if i == 0 {
			want = res.Choices[0].Text
			if res.Cached != 0 || res.Calls < 1 {
				t.Fatalf("first call: %+v", res)
			}
		} else if res.Cached != 1 || res.Calls != 0 || res.Choices[0].Text != want {
			t.Fatalf("call %d not from the cache: %+v", i, res)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	if s.Stats.OK.Load() != 1 {
		t.Fatalf("server answered %d times", s.Stats.OK.Load())
	}
}

func TestContextLengthShrinks(t *testing.T) {
	s, url := sim(t, teachersim.Config{ContextLength: 1000})
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "m"})
	res, err := c.Do(context.Background(), req())
	if err != nil {
		t.Fatal(err)
	}
	if res.Shrunk != 1 || s.Stats.ContextErrors.Load() != 1 {
		t.Fatalf("shrunk %d, context errors %d", res.Shrunk, s.Stats.ContextErrors.Load())
	}
	// The prompt is 34 tokens for the simulator: 1000-34-1 fit.
	if res.PromptTokens+res.CompletionTokens > 1000 {
		t.Fatalf("used %d+%d tokens", res.PromptTokens, res.CompletionTokens)
	}
}

func TestFatalErrors(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "k")
	os.WriteFile(keyFile, []byte("right"), 0o600)
	s, url := sim(t, teachersim.Config{APIKey: "right"})
	var sl sleeps
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "m", APIKey: "wrong", Retries: 5, Sleep: sl.sleep})
	_, err := c.Do(context.Background(), req())
	var fe *llmclient.FatalError
	if !errors.As(err, &fe) || len(sl.d) != 0 || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err %v, sleeps %v", err, sl.d)
	}
	c = llmclient.New(llmclient.Config{BaseURL: url, Model: "m", APIKey: "right"})
	if _, err := c.Do(context.Background(), req()); err != nil {
		t.Fatal(err)
	}
	// A prompt that cannot fit at all.
	s2, url2 := sim(t, teachersim.Config{ContextLength: 10})
	_ = s
	c = llmclient.New(llmclient.Config{BaseURL: url2, Model: "m"})
	if _, err := c.Do(context.Background(), req()); !errors.As(err, &fe) {
		t.Fatalf("err %v", err)
	}
	_ = s2
	// A 404 (wrong base URL path) is fatal too.
	c = llmclient.New(llmclient.Config{BaseURL: strings.TrimSuffix(url, "/v1") + "/nope", Model: "m", Sleep: sl.sleep})
	if _, err := c.Do(context.Background(), req()); !errors.As(err, &fe) || len(sl.d) != 0 {
		t.Fatalf("err %v", err)
	}
}

func TestChat(t *testing.T) {
	_, url := sim(t, teachersim.Config{})
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "gpt-4o-mini", Chat: true, CacheDir: t.TempDir()})
	r := req()
	r.Prompts = []string{prompt, prompt + " "}
	res, err := c.Do(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 2 || res.Choices[1].Prompt != 1 || res.Calls != 2 {
		t.Fatalf("%+v", res)
	}
	if !strings.HasPrefix(res.Choices[0].Text, "2. Instruction: ") {
		t.Fatalf("chat answer %q", res.Choices[0].Text)
	}
	tasks := selfinstruct.ParseResponse(res.Choices[0].Text, 2, res.Choices[0].FinishReason)
	if len(tasks) < 10 {
		t.Fatalf("parsed %d tasks from %q", len(tasks), res.Choices[0].Text)
	}
}

func TestCancel(t *testing.T) {
	_, url := sim(t, teachersim.Config{Latency: time.Hour})
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "m"})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := c.Do(ctx, req()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

var _ http.Handler = (*teachersim.Server)(nil)

func TestWrongEndpointForModel(t *testing.T) {
	_, url := sim(t, teachersim.Config{})
	var fe *llmclient.FatalError
	c := llmclient.New(llmclient.Config{BaseURL: url, Model: "gpt-4o-mini"})
	if _, err := c.Do(context.Background(), req()); !errors.As(err, &fe) || !strings.Contains(err.Error(), "use --chat") {
		t.Fatalf("err %v", err)
	}
}

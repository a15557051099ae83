package teachersim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
)

func newSim(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Pool == nil {
		p, err := selfinstruct.LoadTasks("../../testdata/teachersim/pool.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Pool = p
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

type compResp struct {
	Choices []struct {
		Text         string `json:"text"`
		Index        int    `json:"index"`
		FinishReason string `json:"finish_reason"`
		Message      struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func post(t *testing.T, url string, body any) (int, compResp) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r compResp
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

const prompt = "List of 20 tasks:\n###\n1. Instruction: A\n1. Input:\n<noinput>\n1. Output:\nB\n###\n2. Instruction: C\n2. Input:\n<noinput>\n2. Output:\nD\n###\n3. Instruction:"

func TestCompletionFormatStopAndLength(t *testing.T) {
	ts := newSim(t, Config{})
	url := ts.URL + "/v1/completions"
	code, r := post(t, url, map[string]any{"model": "x", "prompt": prompt, "max_tokens": 100000, "stop": []string{"\n20", "20."}})
	if code != 200 || len(r.Choices) != 1 {
		t.Fatalf("%d %+v", code, r)
	}
	c := r.Choices[0]
	if c.FinishReason != "stop" || !strings.HasPrefix(c.Text, " ") || !strings.HasSuffix(c.Text, "\n###") || strings.Contains(c.Text, "20.") {
		t.Fatalf("finish %q text %q", c.FinishReason, c.Text)
	}
	blocks := selfinstruct.ParseResponse(c.Text, 3, c.FinishReason)
	if len(blocks) != 17 { // tasks 3..19
		t.Fatalf("%d blocks", len(blocks))
	}
	for _, b := range blocks {
		if b.Reason != "" {
			t.Fatalf("block %+v", b)
		}
	}
	// Same prompt, same answer; usage is bytes/4.
	_, r2 := post(t, url, map[string]any{"model": "x", "prompt": prompt, "max_tokens": 100000, "stop": []string{"\n20", "20."}})
	if r2.Choices[0].Text != c.Text || r.Usage.PromptTokens != Tokens(prompt) || r.Usage.CompletionTokens != Tokens(c.Text) {
		t.Fatalf("not deterministic or bad usage %+v", r2.Usage)
	}
	// No stop: the list runs to task 20.
	_, r3 := post(t, url, map[string]any{"prompt": prompt, "max_tokens": 100000})
	if !strings.Contains(r3.Choices[0].Text, "\n20. Output:\n") {
		t.Fatalf("no task 20: %q", r3.Choices[0].Text)
	}
	// A short max_tokens cuts the answer: finish_reason length.
	_, r4 := post(t, url, map[string]any{"prompt": prompt, "max_tokens": 50, "stop": "\n20"})
	if r4.Choices[0].FinishReason != "length" || len(r4.Choices[0].Text) != 200 || !strings.HasPrefix(c.Text, r4.Choices[0].Text) {
		t.Fatalf("cut %q %q", r4.Choices[0].FinishReason, r4.Choices[0].Text)
	}
}

func TestPromptListAndN(t *testing.T) {
	ts := newSim(t, Config{})
	_, r := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": []string{prompt, prompt + " "}, "n": 2, "max_tokens": 3000})
	if len(r.Choices) != 4 {
		t.Fatalf("%d choices", len(r.Choices))
	}
	for i, c := range r.Choices {
		if c.Index != i {
			t.Fatalf("index %d at %d", c.Index, i)
		}
	}
	if r.Choices[0].Text == r.Choices[1].Text {
		t.Fatal("n choices are identical")
	}
}

func TestChatRestates(t *testing.T) {
	ts := newSim(t, Config{})
	_, r := post(t, ts.URL+"/v1/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": prompt}}, "max_tokens": 3000, "stop": []string{"\n20"}})
	if !strings.HasPrefix(r.Choices[0].Message.Content, "3. Instruction: ") {
		t.Fatalf("%q", r.Choices[0].Message.Content)
	}
}

func TestFaultsAndErrors(t *testing.T) {
	ts := newSim(t, Config{ContextLength: 100})
	code, r := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": prompt, "max_tokens": 3072})
	if code != 400 || r.Error == nil || r.Error.Code != "context_length_exceeded" {
		t.Fatalf("%d %+v", code, r.Error)
	}
	ts = newSim(t, Config{ErrorRate: 1, RetryAfter: 2500e6})
	b, _ := json.Marshal(map[string]any{"prompt": prompt})
	seen := map[int]bool{}
	for i := 0; i < 40; i++ {
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seen[resp.StatusCode] = true
		if resp.StatusCode == 429 && (resp.Header.Get("Retry-After") != "3" || resp.Header.Get("retry-after-ms") != "2500") {
			t.Fatalf("headers %v", resp.Header)
		}
	}
	if !seen[429] || !seen[500] || len(seen) != 2 {
		t.Fatalf("codes %v", seen)
	}
	for _, cfg := range []Config{{DropRate: 1}, {TruncateRate: 1}} {
		ts = newSim(t, cfg)
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", bytes.NewReader(b))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(new(compResp))
			resp.Body.Close()
		}
		if err == nil {
			t.Fatalf("%+v: no error", cfg)
		}
	}
	ts = newSim(t, Config{MalformedRate: 1})
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(new(compResp)); err == nil || resp.StatusCode != 200 {
		t.Fatal("malformed body decoded")
	}
	resp.Body.Close()
}

func TestSequentialServesEachOnce(t *testing.T) {
	var pool []selfinstruct.Task
	for i := 0; i < 100; i++ {
		pool = append(pool, selfinstruct.Task{Instruction: "task number " + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Output: "o"})
	}
	ts := newSim(t, Config{Pool: pool, Sequential: true})
	seen := map[string]int{}
	for len(seen) < 100 {
		_, r := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": prompt, "max_tokens": 3000, "stop": []string{"\n20", "20."}})
		for _, b := range selfinstruct.ParseResponse(r.Choices[0].Text, 3, r.Choices[0].FinishReason) {
			if len(seen) == 100 {
				break // the next pass began inside this answer
			}
			seen[b.Task.Instruction]++
			if seen[b.Task.Instruction] > 1 {
				t.Fatalf("%q served twice in one pass (%d seen)", b.Task.Instruction, len(seen))
			}
		}
	}
}

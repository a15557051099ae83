package generate

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzServerRequest sends arbitrary bodies to the completion endpoints:
// the answer is 200 or a 4xx with a JSON error, never a 5xx or a panic.
func FuzzServerRequest(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"hi","max_tokens":2}`,
		`{"prompt":["a","b"],"n":2,"max_tokens":1,"temperature":0.5,"top_p":0.9,"top_k":3,"seed":1,"stop":["x"]}`,
		`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],"max_tokens":2}`,
		`{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"},{"role":"user","content":"v"}],"stream":true,"max_tokens":2}`,
		`{"prompt":"x","stream":true,"max_tokens":3,"repetition_penalty":1.3}`,
		`{"prompt":`, `[]`, `null`, `{"prompt":"\u00ff\ud800"}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	m := loadTiny(f)
	s := NewServer(m, ServerConfig{MaxTokens: 4, MaxBodyBytes: 1024, MaxQueue: 64, MaxPrompts: 4})
	s.Start()
	defer s.Close()
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		path := "/v1/completions"
		if chat {
			path = "/v1/chat/completions"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q: status %d: %s", body, rec.Code, rec.Body.String())
		}
		if rec.Code != 200 || rec.Header().Get("Content-Type") == "application/json" {
			var v map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Fatalf("%q: status %d, body not JSON: %q", body, rec.Code, rec.Body.String())
			}
			if rec.Code != 200 && v["error"] == nil {
				t.Fatalf("%q: status %d without an error object", body, rec.Code)
			}
		}
	})
}

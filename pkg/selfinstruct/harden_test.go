package selfinstruct_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alpaca-go/alpaca/pkg/llmclient"
	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
	"github.com/alpaca-go/alpaca/pkg/teachersim"
	"github.com/klauspost/compress/zstd"
)

// A teacher whose answers never give a usable task stops the run with a
// clear message after --max-fruitless requests, exit 1 (it used to run
// forever with no output and no message).
func TestFruitlessStops(t *testing.T) {
	_, bad := startSim(t, teachersim.Config{BadBlockRate: 1})
	_, good := startSim(t, teachersim.Config{})
	sorry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"text_completion","model":"sim","choices":[{"index":0,"text":"I'm sorry, but I can't help with that.","finish_reason":"stop"}],"usage":{"prompt_tokens":500,"completion_tokens":20,"total_tokens":520}}`)
	}))
	t.Cleanup(sorry.Close)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bad blocks", genArgs(bad, "--max-fruitless", "20")},
		{"sorry", genArgs(sorry.URL+"/v1", "--max-fruitless", "20", "--price-in", "1", "--request-batch", "1")},
		// Every seed shown under a custom prompt: the teacher's list is full.
		{"prompt instructions 1000", genArgs(good, "--max-fruitless", "20", "--prompt-instructions", "1000", "--prompt-file", writeTemp(t, "List of 20 tasks:\n"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "gen.jsonl")
			code, _, stderr := runMain(append(tc.args, "-n", "1000", "--concurrency", "2", "-o", out)...)
			if code != 1 || !strings.Contains(stderr, "no progress: the last 20 requests kept no record") {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			st := readState(t, out+".state.json")
			if st.Kept != 0 || st.Requests < 20 || st.Requests > 20 {
				t.Fatalf("state: %d kept from %d requests", st.Kept, st.Requests)
			}
		})
	}
	// The default applies without the flag; 0 switches it off (bounded here
	// by --max-requests).
	code, _, stderr := runMain(genArgs(bad, "-n", "10", "--concurrency", "4", "--quiet")...)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("the last %d requests", selfinstruct.DefaultMaxFruitless)) {
		t.Fatalf("default: exit %d: %s", code, stderr)
	}
	code, _, stderr = runMain(genArgs(bad, "-n", "10", "--max-fruitless", "0", "--max-requests", "80", "--quiet")...)
	if code != 1 || !strings.Contains(stderr, "--max-requests 80") {
		t.Fatalf("off: exit %d: %s", code, stderr)
	}
}

func writeTemp(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "f.txt")
	os.WriteFile(p, []byte(text), 0o644)
	return p
}

// With the default prompt (a list of 20 tasks), showing 20 or more seed
// tasks leaves no room: a usage error, before any request.
func TestPromptInstructionsTooMany(t *testing.T) {
	for _, k := range []string{"19", "20", "1000"} {
		code, _, stderr := runMain("--seeds", seedsFile, "--prompt-instructions", k, "--base-url", "http://127.0.0.1:9/v1")
		if code != 2 || !strings.Contains(stderr, "no room for new tasks") {
			t.Errorf("%s: exit %d: %s", k, code, stderr)
		}
	}
}

// Unusable --base-url values are usage errors at once (exit 2), not
// runtime errors retried; an empty --base-url never means the public host.
func TestBaseURLChecked(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "")
	for _, u := range []string{"ftp://example.com/v1", "not a url", "http://127.0.0.1:99999/v1", "http://127.0.0.1:0/v1", "http:///v1", "", " ", "127.0.0.1:8000/v1", "http://user:pw@127.0.0.1:8000/v1"} {
		code, _, stderr := runMain("--seeds", seedsFile, "--base-url", u, "-n", "1")
		if code != 2 || !strings.Contains(stderr, "--base-url") || strings.Count(stderr, "\n") > 2 {
			t.Errorf("%q: exit %d: %s", u, code, stderr)
		}
	}
	t.Setenv("OPENAI_BASE_URL", "gopher://x")
	if code, _, stderr := runMain("--seeds", seedsFile, "-n", "1"); code != 2 || !strings.Contains(stderr, "$OPENAI_BASE_URL") {
		t.Errorf("env: exit %d: %s", code, stderr)
	}
	// --base-url '' with $OPENAI_BASE_URL set uses the variable.
	_, url := startSim(t, teachersim.Config{})
	t.Setenv("OPENAI_BASE_URL", url)
	if code, _, stderr := runMain("--seeds", seedsFile, "--base-url", "", "-n", "3", "--quiet", "--retry-base", "1ms"); code != 0 {
		t.Errorf("empty flag with the variable: exit %d: %s", code, stderr)
	}
	for _, u := range []string{"http://127.0.0.1:8000/v1", "https://api.openai.com/v1", "http://[::1]:80", "http://localhost"} {
		if err := llmclient.CheckBaseURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// NaN is not a threshold (strconv takes it; every range check passed it).
func TestNaNFlags(t *testing.T) {
	for _, a := range [][]string{{"--threshold", "NaN"}, {"--temperature", "NaN"}, {"--top-p", "NaN"}, {"--max-failures", "NaN"}, {"--price-in", "Inf"}, {"--price-out", "-1"}} {
		code, _, stderr := runMain(append([]string{"--seeds", seedsFile, "-n", "1"}, a...)...)
		if code != 2 {
			t.Errorf("%v: exit %d: %s", a, code, stderr)
		}
	}
}

// An endless answer body is cut at llmclient.MaxBodyBytes: the run stops
// with a message instead of growing without bound.
func TestEndlessBodyCapped(t *testing.T) {
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"choices":[{"text":"`))
		chunk := bytes.Repeat([]byte("a"), 1<<16)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(endless.Close)
	code, _, stderr := runMain(genArgs(endless.URL+"/v1", "-n", "5", "--concurrency", "1", "--request-batch", "1")...)
	if code != 1 || !strings.Contains(stderr, "longer than 16 MiB") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// The totals count every HTTP call made, also those whose answers were
// discarded when the target was reached.
func TestCallsCountedWhenDiscarded(t *testing.T) {
	_, url := startSim(t, teachersim.Config{})
	seeds, err := selfinstruct.LoadTasks(seedsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, conc := range []int{1, 4, 8} {
		client := llmclient.New(llmclient.Config{BaseURL: url, Model: "sim", Retries: 2, BackoffBase: time.Millisecond})
		var out bytes.Buffer
		g := selfinstruct.NewGenerator(selfinstruct.Options{
			Prompter: &selfinstruct.Prompter{Seeds: seeds, K: 3}, Teacher: client,
			Request: llmclient.Request{MaxTokens: 3072, Temperature: 1, TopP: 1, N: 1},
			Batch:   1, Concurrency: conc, Seed: 1, Target: 3, Dedup: true, Threshold: 0.7, Workers: 1,
		}, &out, nil, nil)
		if err := g.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := g.State(); int64(st.Calls) != client.Calls() || st.Kept != 3 {
			t.Errorf("concurrency %d: state counts %d HTTP calls, the client made %d (kept %d)", conc, st.Calls, client.Calls(), st.Kept)
		}
	}
}

// --resume on a file that is not seedgen's output (zstd, binary) fails
// without changing a byte of it.
func TestResumeLeavesForeignFilesAlone(t *testing.T) {
	_, url := startSim(t, teachersim.Config{})
	dir := t.TempDir()
	var zbuf bytes.Buffer
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write([]byte(`{"instruction":"a"}` + "\n" + `{"instruction":"b"}` + "\n"))
	zw.Close()
	bin := make([]byte, 4096)
	for i := range bin {
		bin[i] = byte(i*7 + i/13)
	}
	for name, data := range map[string][]byte{
		"gen.jsonl.zst-named-plain": zbuf.Bytes(),
		"binary.jsonl":              bin,
		"text.jsonl":                []byte("hello\nworld, no newline at the end"),
		"jsonl-then-binary.jsonl":   append([]byte(`{"instruction":"a"}`+"\n"), bin...),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		code, _, stderr := runMain(genArgs(url, "--resume", p, "-n", "5")...)
		if code != 1 {
			t.Errorf("%s: exit %d: %s", name, code, stderr)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
			t.Errorf("%s: the file was changed (%d bytes, was %d)", name, len(b), len(data))
		}
	}
	// A torn last line of our own output is still cut off and continued.
	p := filepath.Join(dir, "torn.jsonl")
	os.WriteFile(p, []byte(`{"instruction":"Say hi","input":"","output":"hi"}`+"\n"+`{"instruction":"Tor`), 0o644)
	if code, _, stderr := runMain(genArgs(url, "--resume", p, "-n", "4", "--quiet")...); code != 0 {
		t.Fatalf("torn: exit %d: %s", code, stderr)
	}
	if recs := readRecords(t, p); len(recs) != 4 || recs[0].Instruction != "Say hi" {
		t.Fatalf("torn: %d records", len(recs))
	}
}

// -o on a full disk: the file keeps only whole records, and the state and
// the summary count exactly the lines in it. The full disk is a file size
// limit (RLIMIT_FSIZE) in a child process.
func TestFullDiskOutput(t *testing.T) {
	if os.Getenv("SEEDGEN_FSIZE_CHILD") != "" {
		return
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "gen.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskChild$", "-test.v")
	cmd.Env = append(os.Environ(), "SEEDGEN_FSIZE_CHILD="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	m := regexp.MustCompile(`child: exit (\d+); summary kept (-?\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("child output:\n%s", b)
	}
	data, _ := os.ReadFile(out)
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("the output is torn or empty (%d bytes): ...%q\n%s", len(data), data[max(0, len(data)-40):], b)
	}
	lines := strings.Count(string(data), "\n")
	for i, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("line %d is not JSON", i+1)
		}
	}
	st := readState(t, out+".state.json")
	kept, _ := strconv.Atoi(string(m[2]))
	if string(m[1]) != "1" || st.Kept != lines || kept != lines || st.OutBytes != int64(len(data)) {
		t.Fatalf("exit %s; %d lines (%d bytes), state kept %d (%d bytes), summary kept %d\n%s", m[1], lines, len(data), st.Kept, st.OutBytes, kept, b)
	}
	// And it resumes.
	_, url := startSim(t, teachersim.Config{})
	if code, _, stderr := runMain(genArgs(url, "--resume", out, "-n", strconv.Itoa(lines+5), "--quiet")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
}

func TestFullDiskChild(t *testing.T) {
	out := os.Getenv("SEEDGEN_FSIZE_CHILD")
	if out == "" {
		t.Skip("run by TestFullDiskOutput")
	}
	_, url := startSim(t, teachersim.Config{})
	// The writes past the limit fail with EFBIG instead of killing us.
	signalIgnoreXFSZ()
	lim := syscall.Rlimit{Cur: 30000, Max: 30000}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	code, _, stderr := runMain(genArgs(url, "-n", "200", "--request-batch", "1", "--concurrency", "1", "-o", out)...)
	kept := -1
	if m := regexp.MustCompile(`seedgen: kept (\d+) of`).FindStringSubmatch(stderr); m != nil {
		kept, _ = strconv.Atoi(m[1])
	}
	fmt.Printf("child: exit %d; summary kept %d\n%s\n", code, kept, stderr)
}

// FuzzParseState: a seedgen checkpoint either fails to parse or has no
// negative counter and a plausible request number.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"next_request":3,"out_bytes":100,"kept":4,"discarded":{"duplicate":2}}`))
	f.Add([]byte(`{"version":1,"next_request":-5}`))
	f.Add([]byte(`{"version":1,"out_bytes":-1,"kept":-2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := selfinstruct.ParseState(b)
		if err != nil {
			return
		}
		if st.NextRequest < 0 || st.OutBytes < 0 || st.Kept < 0 || st.Requests < 0 || st.NextRequest > 1<<40 {
			t.Fatalf("accepted %+v", st)
		}
		for _, n := range st.Discarded {
			if n < 0 {
				t.Fatalf("accepted %+v", st)
			}
		}
	})
}

// --resume with a hostile checkpoint beside the output: one line, exit 1,
// nothing changed; an output that is a FIFO is refused at once.
func TestResumeHostileCheckpoint(t *testing.T) {
	_, url := startSim(t, teachersim.Config{})
	dir := t.TempDir()
	p := filepath.Join(dir, "gen.jsonl")
	data := []byte(`{"instruction":"Say hi","input":"","output":"hi"}` + "\n")
	os.WriteFile(p, data, 0o644)
	for _, st := range []string{`{"version":1,"next_request":-5}`, `{"version":1,"out_bytes":-1}`, `{"version":7}`, `not json`} {
		os.WriteFile(p+".state.json", []byte(st), 0o644)
		code, _, stderr := runMain(genArgs(url, "--resume", p, "-n", "3")...)
		if code != 1 || !strings.Contains(stderr, "state.json") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%s: exit %d: %s", st, code, stderr)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
			t.Errorf("%s: the output was changed", st)
		}
	}
	fifo := filepath.Join(dir, "fifo.jsonl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	if code, _, stderr := runMain(genArgs(url, "--resume", fifo, "-n", "3")...); code != 1 || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("fifo: exit %d: %s", code, stderr)
	}
}

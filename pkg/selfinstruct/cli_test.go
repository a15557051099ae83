package selfinstruct_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
	"github.com/alpaca-go/alpaca/pkg/teachersim"
)

const (
	seedsFile = "../../testdata/seedgen/seeds.jsonl"
	poolFile  = "../../testdata/teachersim/pool.jsonl"
)

func startSim(t testing.TB, cfg teachersim.Config) (*teachersim.Server, string) {
	t.Helper()
	if cfg.Pool == nil {
		p, err := selfinstruct.LoadTasks(poolFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Pool = p
	}
	s, err := teachersim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s) // 127.0.0.1 only
	t.Cleanup(ts.Close)
	return s, ts.URL + "/v1"
}

var faults = teachersim.Config{ErrorRate: 0.3, DropRate: 0.08, MalformedRate: 0.08, TruncateRate: 0.08, BadBlockRate: 0.05, RetryAfter: time.Millisecond, Latency: time.Millisecond}

// runMain runs seedgen; without a --model in args it adds --model sim
// (seedgen requires one; TestModelRequired runs without).
func runMain(args ...string) (code int, stdout, stderr string) {
	if !slices.Contains(args, "--model") && !slices.Contains(args, "-model") {
		args = append([]string{"--model", "sim"}, args...)
	}
	return runMainRaw(args...)
}

func runMainRaw(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = selfinstruct.Main(args, nil, &o, &e)
	return code, o.String(), e.String()
}

func genArgs(url string, extra ...string) []string {
	return append([]string{"--base-url", url, "--seeds", seedsFile, "--retry-base", "1ms", "--retries", "40", "--model", "sim"}, extra...)
}

type record struct {
	Instruction string             `json:"instruction"`
	Input       *string            `json:"input"`
	Output      *string            `json:"output"`
	Similar     map[string]float64 `json:"most_similar_instructions"`
	Avg         *float64           `json:"avg_similarity_score"`
}

func readRecords(t *testing.T, path string) []record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var r record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		out = append(out, r)
	}
	return out
}

func readState(t *testing.T, path string) selfinstruct.State {
	t.Helper()
	var st selfinstruct.State
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestEndToEndWithFaults(t *testing.T) {
	sim, url := startSim(t, faults)
	dir := t.TempDir()
	out := filepath.Join(dir, "gen.jsonl")
	cache := filepath.Join(dir, "cache")
	code, stdout, stderr := runMain(genArgs(url, "-n", "40", "--request-batch", "2", "--concurrency", "4", "--cache", cache, "-o", out, "--price-in", "1", "--price-out", "2")...)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if sim.Stats.Errors429.Load()+sim.Stats.Errors500.Load() == 0 || sim.Stats.Malformed.Load()+sim.Stats.Truncated.Load()+sim.Stats.Dropped.Load() == 0 {
		t.Fatalf("faults did not happen: %s", sim.Summary())
	}
	recs := readRecords(t, out)
	if len(recs) != 40 {
		t.Fatalf("%d records", len(recs))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.Instruction] {
			t.Fatalf("duplicate %q", r.Instruction)
		}
		seen[r.Instruction] = true
		if r.Input == nil || r.Output == nil || r.Avg == nil || len(r.Similar) == 0 || len(r.Similar) > 10 {
			t.Fatalf("incomplete record %+v", r)
		}
		if selfinstruct.FilterReason(selfinstruct.Task{Instruction: r.Instruction}) != "" {
			t.Fatalf("filtered instruction kept: %q", r.Instruction)
		}
		for _, sc := range r.Similar {
			if sc > 0.7 {
				t.Fatalf("%q kept with similarity %v", r.Instruction, sc)
			}
		}
	}
	st := readState(t, out+".state.json")
	sum := st.Kept + st.Surplus
	for _, n := range st.Discarded {
		sum += n
	}
	// Which requests meet a fault depends on the order in which concurrent
	// requests reach the simulator, and requests past the target are never
	// handled, so retries and malformed blocks are checked in the sequential
	// run below, where the faults fall the same way every time.
	if st.Kept != 40 || sum != st.Candidates || st.Discarded["similar"] == 0 {
		t.Fatalf("counts do not add up: %+v (sum %d)", st, sum)
	}
	for _, want := range []string{"kept 40 of 40", "estimated cost $", fmt.Sprintf("%d blocks: 40 kept", st.Candidates), "retries"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
	first, _ := os.ReadFile(out)

	// One request at a time: the simulator draws its faults in a fixed order.
	_, urlSeq := startSim(t, faults)
	outSeq := filepath.Join(dir, "seq.jsonl")
	if code, _, stderr := runMain(genArgs(urlSeq, "-n", "40", "--request-batch", "2", "--concurrency", "1", "-o", outSeq)...); code != 0 {
		t.Fatalf("sequential run: exit %d: %s", code, stderr)
	}
	if st := readState(t, outSeq+".state.json"); st.Kept != 40 || st.Retries == 0 || st.Discarded["malformed"] == 0 {
		t.Fatalf("sequential run with faults: %+v", st)
	}

	// Same seed, no faults, no cache, other concurrency: same bytes
	// (the simulator answers a prompt the same way every time).
	_, url2 := startSim(t, teachersim.Config{BadBlockRate: faults.BadBlockRate}) // same answers, no faults
	for _, conc := range []string{"1", "7"} {
		out2 := filepath.Join(dir, "gen"+conc+".jsonl")
		if code, _, stderr := runMain(genArgs(url2, "-n", "40", "--request-batch", "2", "--concurrency", conc, "-o", out2)...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if b, _ := os.ReadFile(out2); !bytes.Equal(b, first) {
			t.Fatalf("concurrency %s: output differs", conc)
		}
	}

	// From the cache, against a teacher that always fails: nothing is
	// asked, the output is the same.
	deadSim, dead := startSim(t, teachersim.Config{ErrorRate: 1})
	code, stdout, stderr = runMain(genArgs(dead, "-n", "40", "--request-batch", "2", "--concurrency", "3", "--cache", cache, "--retries", "0")...)
	if code != 0 || stdout != string(first) {
		t.Fatalf("cached run: exit %d, stderr %s", code, stderr)
	}
	// Every record came from the cache; requests past the target may have
	// been in flight (speculatively, --concurrency) and reached the dead
	// teacher: the summary counts those calls too, never fewer than the
	// teacher saw.
	m := regexp.MustCompile(`, (\d+) HTTP calls`).FindStringSubmatch(stderr)
	if m == nil || !strings.Contains(stderr, " 0 failed") {
		t.Fatalf("cached run: %s", stderr)
	}
	if calls, _ := strconv.Atoi(m[1]); int64(calls) < deadSim.Stats.Requests.Load() {
		t.Fatalf("the summary counts %d HTTP calls, the teacher got %d", calls, deadSim.Stats.Requests.Load())
	}
}

func TestNoDedupAndChat(t *testing.T) {
	_, url := startSim(t, teachersim.Config{})
	code, stdout, stderr := runMain(genArgs(url, "-n", "25", "--no-dedup", "--chat", "--quiet")...)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 25 || strings.Contains(stdout, "most_similar") {
		t.Fatalf("%d lines: %s", len(lines), stdout)
	}
}

func TestCLIErrors(t *testing.T) {
	_, url := startSim(t, teachersim.Config{APIKey: "sesame"})
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists.jsonl")
	os.WriteFile(existing, []byte("{\"instruction\":\"x\"}\n"), 0o644)
	badSeeds := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(badSeeds, []byte("{\"instruction\":\"ok\"}\n{\"input\":\"no instruction\"}\n"), 0o644)
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("sesame\n"), 0o600)
	wrongKey := filepath.Join(dir, "wrong")
	os.WriteFile(wrongKey, []byte("hunter2\n"), 0o600)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"help", []string{"--help"}, 0, "Example:", ""},
		{"no seeds", []string{"-n", "3"}, 2, "", "--seeds FILE is required"},
		{"unknown flag", []string{"--bogus"}, 2, "", "flag provided but not defined"},
		{"positional", []string{"--seeds", seedsFile, "x.jsonl"}, 2, "", "unexpected argument"},
		{"bad n", []string{"--seeds", seedsFile, "-n", "0"}, 2, "", "--num-instructions"},
		{"zstd file", []string{"--seeds", seedsFile, "-o", filepath.Join(dir, "a.jsonl.zst")}, 2, "", "cannot be compressed"},
		{"resume and other output", []string{"--seeds", seedsFile, "--resume", existing, "-o", filepath.Join(dir, "b")}, 2, "", "--resume FILE is also the output"},
		{"bad seeds", []string{"--seeds", badSeeds}, 1, "", "bad.jsonl:2: record 2: no \"instruction\" field"},
		{"missing seeds", []string{"--seeds", filepath.Join(dir, "nope.jsonl")}, 1, "", "no such file"},
		{"output exists", []string{"--base-url", url, "--seeds", seedsFile, "-o", existing}, 1, "", "already exists; continue it with --resume"},
		{"wrong key", []string{"--base-url", url, "--seeds", seedsFile, "--api-key-file", wrongKey}, 1, "", "check the API key"},
		{"print prompt", []string{"--seeds", seedsFile, "--print-prompt"}, 0, "###\n4. Instruction:", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout %q\nstderr %q", code, tc.code, stdout, stderr)
			}
			if strings.Contains(stderr, "hunter2") || strings.Contains(stderr, "goroutine") {
				t.Fatalf("leaked: %q", stderr)
			}
			if tc.code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
				t.Fatalf("not a one-line error: %q", stderr)
			}
		})
	}
	// The right key works.
	if code, _, stderr := runMain("--base-url", url, "--seeds", seedsFile, "--api-key-file", keyFile, "-n", "5", "--quiet"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestMaxFailures(t *testing.T) {
	_, url := startSim(t, teachersim.Config{ErrorRate: 1, RetryAfter: time.Millisecond})
	code, _, stderr := runMain(genArgs(url, "--retries", "1", "--request-batch", "1", "--concurrency", "2")...)
	if code != 1 || !strings.Contains(stderr, "too many failed requests") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestResumeFromCheckpoints builds the files a kill -9 can leave (a clean
// checkpoint; records written after the checkpoint; a torn last line; no
// checkpoint at all) from runs stopped with --max-requests, and checks that
// --resume ends with exactly the uninterrupted run's bytes.
func TestResumeFromCheckpoints(t *testing.T) {
	_, url := startSim(t, teachersim.Config{BadBlockRate: 0.05})
	dir := t.TempDir()
	common := []string{"-n", "55", "--request-batch", "1", "--concurrency", "3", "--quiet"}
	full := filepath.Join(dir, "full.jsonl")
	if code, _, stderr := runMain(genArgs(url, append(common, "-o", full)...)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want, _ := os.ReadFile(full)
	// Checkpoints after k requests.
	type ckpt struct {
		state []byte
		st    selfinstruct.State
	}
	var cks []ckpt
	for _, k := range []int{1, 2, 4, 7} {
		p := filepath.Join(dir, fmt.Sprintf("k%d.jsonl", k))
		code, _, stderr := runMain(genArgs(url, append(common[:len(common)-1:len(common)-1], "-o", p, "--max-requests", fmt.Sprint(k))...)...)
		if code != 1 || !strings.Contains(stderr, "--max-requests") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		b, _ := os.ReadFile(p + ".state.json")
		st := readState(t, p+".state.json")
		got, _ := os.ReadFile(p)
		if st.NextRequest != k || st.OutBytes != int64(len(got)) || !bytes.HasPrefix(want, got) {
			t.Fatalf("k=%d: state %+v, %d bytes", k, st, len(got))
		}
		cks = append(cks, ckpt{b, st})
	}
	lineEnds := func(n int) int { // byte offset after n lines of want
		off := 0
		for i := 0; i < n; i++ {
			off += bytes.IndexByte(want[off:], '\n') + 1
		}
		return off
	}
	type tcase struct {
		name  string
		state []byte
		data  []byte
	}
	var cases []tcase
	for i, c := range cks {
		b := int(c.st.OutBytes)
		cases = append(cases, tcase{fmt.Sprintf("clean %d", i), c.state, want[:b]})
		cases = append(cases, tcase{fmt.Sprintf("torn %d", i), c.state, append(append([]byte{}, want[:b]...), `{"instruction":"Half a rec`...)})
		if i+1 < len(cks) {
			// Records of later requests written, checkpoint not yet.
			nb := int(cks[i+1].st.OutBytes)
			if nb > b {
				mid := b + bytes.IndexByte(want[b:], '\n') + 1
				cases = append(cases, tcase{fmt.Sprintf("tail %d", i), c.state, want[:mid]})
				cases = append(cases, tcase{fmt.Sprintf("tail all %d", i), c.state, append(append([]byte{}, want[:nb]...), want[nb:nb+10]...)})
			}
		}
	}
	last := cks[len(cks)-1]
	cases = append(cases, tcase{"checkpoint ahead of the file", last.state, want[:lineEnds(3)]})
	cases = append(cases, tcase{"no checkpoint", nil, want[:lineEnds(12)]})
	cases = append(cases, tcase{"no checkpoint torn", nil, want[:lineEnds(12)+7]})
	cases = append(cases, tcase{"empty", nil, nil})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("r%d.jsonl", i))
			os.WriteFile(p, tc.data, 0o644)
			if tc.state != nil {
				os.WriteFile(p+".state.json", tc.state, 0o644)
			}
			if code, _, stderr := runMain(genArgs(url, append(common, "--resume", p)...)...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, want) {
				t.Fatalf("resumed output differs: %d vs %d bytes", len(got), len(want))
			}
			// Resuming a finished run adds nothing.
			if code, _, stderr := runMain(genArgs(url, append(common, "--resume", p)...)...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if again, _ := os.ReadFile(p); !bytes.Equal(again, want) {
				t.Fatal("second resume changed the output")
			}
		})
	}
}

// seedgen has no default teacher model (Alpaca's text-davinci-003 is
// retired): without --model it is a usage error, before any request.
func TestModelRequired(t *testing.T) {
	code, _, e := runMainRaw("--base-url", "http://127.0.0.1:9/v1", "--seeds", seedsFile)
	if code != 2 || !strings.Contains(e, "--model NAME is required") {
		t.Fatalf("exit %d: %s", code, e)
	}
}

// A refused connection (nothing listens at --base-url) fails after a few
// short retries with a message saying so, not after minutes of backoff.
func TestRefusedConnectionFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	t.Setenv("OPENAI_API_KEY", "x")
	code, _, e := runMain("--base-url", "http://"+addr+"/v1", "--seeds", seedsFile, "--num-instructions", "5", "--retries", "8", "--retry-base", "10s")
	if code != 1 || !strings.Contains(e, "nothing accepts connections at") || !strings.Contains(e, "after 4 tries") {
		t.Fatalf("exit %d: %s", code, e)
	}
}

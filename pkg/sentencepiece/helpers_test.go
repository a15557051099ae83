package sentencepiece

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/alpaca-go/alpaca/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// repoRoot walks up from the package directory to go.mod.
func repoRoot(t testing.TB) string {
	root := testutil.RepoRoot()
	if root == "" {
		t.Fatal("go.mod not found")
	}
	return root
}

// llamaModel loads ../shared/data/llama-tokenizer.model or skips.
func llamaModel(t testing.TB) (*Model, string) {
	path := filepath.Join(repoRoot(t), "..", "shared", "data", "llama-tokenizer.model")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("LLaMA tokenizer not present at %s (../shared is not in the repo; see /work/shared/README.md)", path)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m, path
}

type fixture struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func readFixtures(t testing.TB, path string) []fixture {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []fixture
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var f fixture
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, f)
	}
	return out
}

// havePySPM reports whether the reference Python binding is installed.
func havePySPM() bool {
	return exec.Command("/usr/bin/python3", "-c", "import sentencepiece").Run() == nil
}

// refEncode encodes texts with the reference library through
// scripts/fixtures/spm_ids.py.
func refEncode(t testing.TB, model string, texts []string) [][]int32 {
	t.Helper()
	var in bytes.Buffer
	for _, s := range texts {
		b, _ := json.Marshal(map[string]string{"text": s})
		in.Write(b)
		in.WriteByte('\n')
	}
	cmd := exec.Command("/usr/bin/python3", filepath.Join(repoRoot(t), "scripts", "fixtures", "spm_ids.py"), model)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference encoder: %v: %s", err, stderr.String())
	}
	var res [][]int32
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var f fixture
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		res = append(res, f.IDs)
	}
	if len(res) != len(texts) {
		t.Fatalf("reference encoder returned %d results for %d texts", len(res), len(texts))
	}
	return res
}

// compareIDs reports every text whose ids differ (up to a few) and fails.
func compareIDs(t testing.TB, m *Model, texts []string, want [][]int32) {
	t.Helper()
	bad := 0
	for i, s := range texts {
		got := m.Encode(s)
		if !slices.Equal(got, want[i]) {
			bad++
			if bad <= 5 {
				t.Errorf("text %d %q:\n got %v\nwant %v\n got pieces %s\nwant pieces %s", i, clip(s), got, want[i], pieces(m, got), pieces(m, want[i]))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d texts differ", bad, len(texts))
	}
}

func pieces(m *Model, ids []int32) string {
	var ps []string
	for _, id := range ids {
		ps = append(ps, m.IDToPiece(id))
	}
	return fmt.Sprintf("%q", ps)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func textsOf(fs []fixture) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Text)
	}
	return out
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

package rouge

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The fixtures in testdata/ are written by scripts/fixtures/rouge_tokens.py
// with plain Python 3 (re and str.lower only: rouge_score's tokenizer and
// _score_lcs written out), e.g.
//
//	/usr/bin/python3 scripts/fixtures/rouge_tokens.py pkg/rouge/testdata
//
// (CPython 3.11.2, Unicode 14.0.0.)

func readFixture(t *testing.T, name string, fn func(line []byte)) {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		fn(sc.Bytes())
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("%s is empty", name)
	}
}

func TestTokenizeFixture(t *testing.T) {
	readFixture(t, "tokenize.jsonl", func(line []byte) {
		var c struct {
			Text   string   `json:"text"`
			Tokens []string `json:"tokens"`
		}
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatal(err)
		}
		got := Tokenize(c.Text)
		if strings.Join(got, "|") != strings.Join(c.Tokens, "|") || len(got) != len(c.Tokens) {
			t.Errorf("Tokenize(%q) = %q, Python gives %q", c.Text, got, c.Tokens)
		}
	})
}

// TestTokenizeEveryCodePoint: Python's lower() maps exactly the code points
// listed in lower_ascii.jsonl (beyond [A-Za-z0-9]) to something containing
// [a-z0-9]; every other code point must separate tokens.
func TestTokenizeEveryCodePoint(t *testing.T) {
	type entry struct {
		CP        rune     `json:"cp"`
		Tokens    []string `json:"tokens"`
		InContext []string `json:"in_context"`
	}
	special := map[rune]entry{}
	readFixture(t, "lower_ascii.jsonl", func(line []byte) {
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		special[e.CP] = e
	})
	bad := 0
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r < 0xE000 {
			continue
		}
		s := string(r)
		var want, wantCtx []string
		switch {
		case r < 128 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9'):
			want = []string{s}
			wantCtx = []string{"a" + s + "b"}
		case r >= 'A' && r <= 'Z':
			want = []string{strings.ToLower(s)}
			wantCtx = []string{"a" + strings.ToLower(s) + "b"}
		default:
			if e, ok := special[r]; ok {
				want, wantCtx = e.Tokens, e.InContext
			} else {
				wantCtx = []string{"a", "b"}
			}
		}
		got, gotCtx := Tokenize(s), Tokenize("a"+s+"b")
		if strings.Join(got, "|") != strings.Join(want, "|") || strings.Join(gotCtx, "|") != strings.Join(wantCtx, "|") {
			if bad++; bad < 10 {
				t.Errorf("U+%04X: Tokenize = %q / in context %q, Python gives %q / %q", r, got, gotCtx, want, wantCtx)
			}
		}
	}
}

func TestScoreFixture(t *testing.T) {
	n := 0
	readFixture(t, "scores.jsonl", func(line []byte) {
		var c struct {
			Pool, Cand string
			LCS        int
			F          string
		}
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatal(err)
		}
		want, err := strconv.ParseFloat(c.F, 64)
		if err != nil {
			t.Fatal(err)
		}
		p, q := Tokenize(c.Pool), Tokenize(c.Cand)
		if got := LCS(q, p); got != c.LCS {
			t.Errorf("LCS(%q, %q) = %d, Python %d", c.Cand, c.Pool, got, c.LCS)
		}
		if got := ScoreText(c.Pool, c.Cand); got != want {
			t.Errorf("ScoreText(%q, %q) = %v, Python %v", c.Pool, c.Cand, got, want)
		}
		// the filter decides the boundary the same way
		for _, th := range []float64{0.7, 0.5, 0.3} {
			f := NewFilter(th)
			f.Add(c.Pool)
			keep, _ := f.Check(c.Cand, false)
			if keep != (want <= th) {
				t.Errorf("threshold %v: pool %q cand %q (F=%v): keep=%v", th, c.Pool, c.Cand, want, keep)
			}
		}
		n++
	})
}

// TestMeanNumPy: numpy_mean.jsonl is written by scripts/fixtures/numpy_mean.py
// (NumPy 1.24.2): float(np.mean(x)) for vectors of 1 to 4097 scores. NumPy
// sums pairwise, which differs from a plain running sum in the last bits.
func TestMeanNumPy(t *testing.T) {
	differs := 0
	readFixture(t, "numpy_mean.jsonl", func(line []byte) {
		var c struct {
			X     []string
			Mean  string
			Naive string
		}
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatal(err)
		}
		x := make([]float64, len(c.X))
		for i, s := range c.X {
			x[i], _ = strconv.ParseFloat(s, 64)
		}
		want, _ := strconv.ParseFloat(c.Mean, 64)
		if got := Mean(x); got != want {
			t.Errorf("n=%d: Mean = %v, NumPy %v", len(x), got, want)
		}
		if c.Mean != c.Naive {
			differs++
		}
	})
	if differs == 0 {
		t.Fatal("fixture has no vector where pairwise and naive sums differ")
	}
}

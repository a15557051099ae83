package rouge

import (
	"github.com/alpaca-go/alpaca/internal/testutil"
	"io"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/jsonl"
)

// sharedDataOK is the path of a shared data file, or "" when absent.
func sharedDataOK(name string) string {
	if p, ok := testutil.SharedDataPath(name); ok {
		return p
	}
	return ""
}

func readField(tb testing.TB, path, field string) []string {
	tb.Helper()
	r, err := jsonl.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	var out []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		s, _, err := jsonl.GetString(rec.Raw, field)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
}

// TestRealDataMatchesReference runs the greedy filter on the Alpaca
// instructions against the 175 seed tasks and compares every decision (and
// the best match of every dropped record) with the brute-force reference.
// The reference is O(n²) LCS, so only a prefix of the data is used.
func TestRealDataMatchesReference(t *testing.T) {
	defer indexKnobs(0)() // restores the defaults, also after a failure
	seeds := readField(t, testutil.SharedData(t, "seed_tasks.jsonl"), "instruction")
	data := readField(t, testutil.SharedData(t, "alpaca_data.json"), "instruction")
	n := 1500
	if testing.Short() {
		n = 600
	}
	data = data[:n]
	for i, th := range []float64{0.7, 0.5, 0.3} {
		indexKnobs(i)
		ref := &refFilter{t: th}
		f := NewFilter(th)
		f.ExactBest = true
		for _, s := range seeds {
			ref.add(s)
			f.Add(s)
		}
		var got []Result
		for lo := 0; lo < len(data); lo += 300 {
			got = append(got, f.CheckBatch(data[lo:min(lo+300, len(data))], true, 0)...)
		}
		kept := 0
		for i, s := range data {
			keep, best := ref.check(s, true)
			if keep != got[i].Keep {
				t.Fatalf("t=%v record %d %q: reference keep=%v (best %+v), filter keep=%v (best %+v)", th, i+1, s, keep, best, got[i].Keep, got[i].Best)
			}
			if !keep && best != got[i].Best {
				t.Fatalf("t=%v record %d: best %+v, want %+v", th, i+1, got[i].Best, best)
			}
			if keep {
				kept++
			}
		}
		t.Logf("threshold %v: %d of %d kept, same as the reference", th, kept, n)
	}
}

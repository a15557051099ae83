package torchmath

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// testdata/mean.json is written by scripts/fixtures/torch_mean.py: torch's
// float32 x.mean(dim=0) on the CPU for the matrices of cell below.
func cell(r, c int64) float32 {
	return float32(float64((r*7919+c*104729)%10007)/1000 - 5)
}

func TestMeanRowsMatchesTorch(t *testing.T) {
	b, err := os.ReadFile("testdata/mean.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Rows, Cols int64
		MeanBits   []uint32 `json:"mean_bits"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		got := MeanRows(tc.Rows, tc.Cols, func(r int64, dst []float32) {
			for c := range dst {
				dst[c] = cell(r, int64(c))
			}
		})
		naive := 0
		for c, want := range tc.MeanBits {
			if math.Float32bits(got[c]) != want {
				t.Errorf("rows %d col %d: %g, torch %g", tc.Rows, c, got[c], math.Float32frombits(want))
			}
			var s float32
			for r := int64(0); r < tc.Rows; r++ {
				s += cell(r, int64(c))
			}
			if math.Float32bits(s/float32(tc.Rows)) != want {
				naive++
			}
		}
		t.Logf("rows %d: a plain float32 running sum differs from torch in %d of %d columns", tc.Rows, naive, tc.Cols)
	}
}

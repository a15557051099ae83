package testutil

import (
	"math"
	"testing"
)

// fakeTB records failures instead of failing the real test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Errorf(string, ...any) { f.failed = true }

func TestMaxRelErrNaN(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	want := []float64{1, -2, 3}
	cases := []struct {
		name string
		got  []float32
		fail bool
	}{
		{"equal", []float32{1, -2, 3}, false},
		{"small error", []float32{1, -2, 3.000001}, false},
		{"NaN planted", []float32{1, nan, 3}, true},
		{"Inf planted", []float32{1, inf, 3}, true},
		{"short", []float32{1, -2}, true},
		{"large error", []float32{1, -2, 4}, true},
	}
	for _, c := range cases {
		e := MaxRelErr(c.got, want)
		if c.fail != !(e <= 1e-5) {
			t.Errorf("%s: MaxRelErr = %v, want failing=%v", c.name, e, c.fail)
		}
		ft := &fakeTB{}
		CloseRel(ft, c.name, c.got, want, 1e-5)
		if ft.failed != c.fail {
			t.Errorf("%s: CloseRel failed=%v, want %v", c.name, ft.failed, c.fail)
		}
	}
	// NaN in the reference fails too.
	if e := MaxRelErr([]float32{1}, []float64{math.NaN()}); !math.IsInf(e, 1) {
		t.Errorf("NaN reference: %v", e)
	}
	// The same infinity on both sides is a match.
	if e := MaxRelErr([]float64{math.Inf(-1), 1}, []float64{math.Inf(-1), 1}); e != 0 {
		t.Errorf("matching -Inf: %v", e)
	}
	ft := &fakeTB{}
	CloseScalar(ft, "nan", math.NaN(), 1, 1e-9, 1e-3)
	if !ft.failed {
		t.Error("CloseScalar passed NaN")
	}
	// What the old helpers did: math.Max drops NaN, and NaN > tol is false.
	old := math.Max(0, math.Abs(math.NaN()-1))
	if old > 1e-5 {
		t.Error("expected the old idiom to miss NaN (documenting the bug)")
	}
}

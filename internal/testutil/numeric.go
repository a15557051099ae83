package testutil

import (
	"math"
	"testing"
)

// Float is the element type the numeric helpers accept.
type Float interface{ ~float32 | ~float64 }

// MaxRelErr is the normwise relative error max|got-want| / max|want|
// (the absolute error when want is all zero). It is +Inf when the lengths
// differ or when any element of got or want is NaN or infinite, unless
// both hold the same non-finite value at that position (an expected
// infinity), so a NaN can never pass a "err <= tol" check. (The usual
// math.Max(d, |x-y|) loop silently drops NaN: math.Max(d, NaN) is NaN and
// NaN > tol is false.)
func MaxRelErr[G, W Float](got []G, want []W) float64 {
	d := MaxAbsErr(got, want)
	if math.IsInf(d, 1) {
		return d
	}
	s := 0.0 // max|want| over the finite entries (the others matched)
	for _, w := range want {
		if a := math.Abs(float64(w)); !math.IsInf(a, 0) && a > s {
			s = a
		}
	}
	if s == 0 {
		return d
	}
	return d / s
}

// RelErr is |got-want| / max(|want|, floor): +Inf on NaN or infinity in
// either (unless both are the same infinity).
func RelErr(got, want, floor float64) float64 {
	if bad(got) || bad(want) {
		if math.IsInf(got, 0) && got == want {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(got-want) / math.Max(math.Abs(want), floor)
}

func bad(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }

// Within reports whether err is a number no larger than tol (false for NaN).
func Within(err, tol float64) bool { return err <= tol }

// CloseRel fails the test (t.Errorf) when MaxRelErr(got, want) > tol or is
// not a number, naming what was compared; it returns the error.
func CloseRel[G, W Float](t testing.TB, name string, got []G, want []W, tol float64) float64 {
	t.Helper()
	e := MaxRelErr(got, want)
	if !(e <= tol) {
		t.Errorf("%s: relative error %.3g > %g", name, e, tol)
	}
	return e
}

// CloseScalar fails the test when RelErr(got, want, floor) > tol (or NaN).
func CloseScalar(t testing.TB, name string, got, want, floor, tol float64) {
	t.Helper()
	if e := RelErr(got, want, floor); !(e <= tol) {
		t.Errorf("%s: %v, want %v (relative error %.3g > %g)", name, got, want, e, tol)
	}
}

// MaxAbsErr is max|got-want|, +Inf on a length mismatch or any NaN or
// infinity (unless both hold the same infinity).
func MaxAbsErr[G, W Float](got []G, want []W) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if bad(g) || bad(w) {
			if math.IsInf(g, 0) && g == w {
				continue
			}
			return math.Inf(1)
		}
		if e := math.Abs(g - w); e > d {
			d = e
		}
	}
	return d
}

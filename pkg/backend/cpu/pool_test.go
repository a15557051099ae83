package cpu

import (
	"sync"
	"testing"
	"time"
)

// TestWorkers: every part of every job runs exactly once, on fresh workers
// (whose goroutines may start after the first job is posted), back to back
// and after the workers have parked; a call made while another runs is
// refused (the caller then starts goroutines).
func TestWorkers(t *testing.T) {
	for parts := 2; parts <= 5; parts++ {
		w := newWorkers(parts)
		counts := make([]int, parts)
		for job := 0; job < 3000; job++ {
			if job == 1500 {
				time.Sleep(2 * spinFor) // the helpers park
			}
			if !w.run(func(p int) { counts[p]++ }) {
				t.Fatalf("parts %d job %d: refused while idle", parts, job)
			}
		}
		for p, n := range counts {
			if n != 3000 {
				t.Fatalf("parts %d: part %d ran %d times, want 3000", parts, p, n)
			}
		}
	}
	w := newWorkers(2)
	inner := true
	w.run(func(p int) {
		if p == 0 {
			inner = w.run(func(int) {})
		}
	})
	if inner {
		t.Fatal("a nested call was accepted")
	}
}

// TestParallelConcurrentCallers: callers on several goroutines share one
// backend's workers (the ones refused fall back to goroutines); every chunk
// of every call runs once.
func TestParallelConcurrentCallers(t *testing.T) {
	c := New(3)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := 0; it < 500; it++ {
				seen := make([]int, 100)
				c.parallel(len(seen), 1, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						seen[i]++
					}
				})
				for i, n := range seen {
					if n != 1 {
						t.Errorf("item %d ran %d times", i, n)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

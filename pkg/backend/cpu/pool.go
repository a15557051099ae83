package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// workers is a set of persistent goroutines that run the parts of a
// parallel call. A worker that finished its part spins for spinFor on the
// job counter before parking, so the many short parallel regions of one
// decoding step (a few per layer, each tens of microseconds) do not each pay
// to wake a parked thread; spinning is bounded, so an idle backend costs no
// CPU. One call at a time: a call made while another runs (from another
// goroutine, or nested) starts plain goroutines instead.
type workers struct {
	parts   int           // helpers + the calling goroutine
	busy    sync.Mutex    // held by the running call
	gen     atomic.Uint64 // bumped for each job
	pending atomic.Int64  // parts not finished yet
	job     func(part int)
	parked  atomic.Int32 // workers waiting on wake
	mu      sync.Mutex
	wake    *sync.Cond
}

// spinFor is how long a worker (or the calling goroutine, waiting for the
// others) spins before parking.
const spinFor = 200 * time.Microsecond

var (
	poolsMu sync.Mutex
	pools   = map[int]*workers{}
)

// workersFor returns the shared workers for parts-1 helper goroutines.
func workersFor(parts int) *workers {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	w := pools[parts]
	if w == nil {
		w = newWorkers(parts)
		pools[parts] = w
	}
	return w
}

// newWorkers starts parts-1 helper goroutines (they live as long as the
// process: use workersFor).
func newWorkers(parts int) *workers {
	w := &workers{parts: parts}
	w.wake = sync.NewCond(&w.mu)
	for i := 1; i < parts; i++ {
		// generation 0: a worker that starts late still runs the first job
		go w.loop(i, 0)
	}
	return w
}

func (w *workers) loop(part int, last uint64) {
	for {
		// wait for the next job: spin, then park
		start := time.Now()
		for spins := 0; w.gen.Load() == last; spins++ {
			if spins&255 == 255 {
				if time.Since(start) > spinFor {
					w.mu.Lock()
					w.parked.Add(1)
					for w.gen.Load() == last {
						w.wake.Wait()
					}
					w.parked.Add(-1)
					w.mu.Unlock()
					break
				}
				runtime.Gosched()
			}
		}
		last = w.gen.Load()
		w.job(part)
		w.pending.Add(-1)
	}
}

// run calls job(0..w.parts-1), part 0 on the calling goroutine, and returns
// when all are done. It reports false (running nothing) when the workers
// are busy with another call.
func (w *workers) run(job func(part int)) bool {
	if !w.busy.TryLock() {
		return false
	}
	defer w.busy.Unlock()
	w.job = job
	w.pending.Store(int64(w.parts - 1))
	w.gen.Add(1)
	if w.parked.Load() > 0 {
		w.mu.Lock()
		w.wake.Broadcast()
		w.mu.Unlock()
	}
	job(0)
	for spins := 0; w.pending.Load() > 0; spins++ {
		if spins&255 == 255 {
			runtime.Gosched()
		}
	}
	w.job = nil
	return true
}

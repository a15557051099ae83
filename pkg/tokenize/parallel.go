package tokenize

import (
	"context"
	"github.com/alpaca-go/alpaca/pkg/cli"
	"sync"
)

// batch is a group of inputs processed by one worker; results come back in
// the order the batches were read.
type batch[I, O any] struct {
	in   []I
	out  []O
	err  error
	done chan struct{}
}

// ordered runs work over the items that next yields, on workers
// goroutines, in batches of up to batchSize items, and hands the results to
// emit in input order. At most 2×workers batches are in flight, so memory
// stays bounded on any input size. next returns ok=false at the end. work
// gets the worker index (for per-worker state). The first error stops
// everything and is returned.
func ordered[I, O any](ctx context.Context, workers, batchSize int,
	next func() (item I, ok bool, err error),
	work func(worker int, in []I, out []O) error,
	emit func(out []O, in []I) error) error {
	if workers < 1 {
		workers = 1
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *batch[I, O], workers)
	queue := make(chan *batch[I, O], 2*workers)
	var readErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer cli.Guard()
			defer wg.Done()
			for b := range jobs {
				b.out = make([]O, len(b.in))
				if ctx.Err() == nil {
					b.err = work(w, b.in, b.out)
				}
				close(b.done)
			}
		}(w)
	}
	go func() {
		defer cli.Guard()
		defer close(queue)
		defer close(jobs)
		for ctx.Err() == nil {
			b := &batch[I, O]{done: make(chan struct{})}
			for len(b.in) < batchSize {
				item, ok, err := next()
				if err != nil {
					readErr = err
					break
				}
				if !ok {
					break
				}
				b.in = append(b.in, item)
			}
			if len(b.in) == 0 {
				return
			}
			select {
			case queue <- b:
			case <-ctx.Done():
				return
			}
			jobs <- b
			if readErr != nil || len(b.in) < batchSize {
				return
			}
		}
	}()
	var err error
	for b := range queue {
		<-b.done
		if err != nil {
			continue
		}
		if b.err != nil {
			err = b.err
			cancel()
			continue
		}
		if e := emit(b.out, b.in); e != nil {
			err = e
			cancel()
		}
	}
	wg.Wait()
	if err == nil && readErr != nil {
		err = readErr
	}
	if err == nil {
		err = parent.Err()
	}
	return err
}

// Package load drives a call at a fixed concurrency, optionally paced to a
// rate, and summarises throughput and latency percentiles.
package load

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Call is one operation under load; an error counts as a failed call.
type Call func(ctx context.Context) error

// Options shape a run. Exactly one of Duration and Calls bounds it.
type Options struct {
	// Concurrency is the number of workers, each with one call in flight.
	Concurrency int
	// Duration bounds the run by time.
	Duration time.Duration
	// Calls bounds the run by the number of calls, spread over the workers.
	Calls int
	// Rate paces the run to that many calls per second in total; zero
	// means as fast as the workers go. Paced latency is measured from each
	// call's scheduled start, so a stalled server is not hidden by the
	// load generator slowing down with it.
	Rate float64
}

// Result summarises a run.
type Result struct {
	Calls    int
	Errors   int
	Elapsed  time.Duration
	P50, P90 time.Duration
	P99      time.Duration
	P999     time.Duration
	// FirstError is an example failure, for the report.
	FirstError error
	// Latencies are every call's latency, sorted.
	Latencies []time.Duration
}

// Throughput is completed calls per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Calls) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	return fmt.Sprintf("%9.0f/s  p50 %8s  p90 %8s  p99 %8s  p99.9 %8s  errors %d",
		r.Throughput(), r.P50, r.P90, r.P99, r.P999, r.Errors)
}

// Run calls call under opts until the duration or call count is reached or
// ctx ends.
func Run(ctx context.Context, call Call, opts Options) (Result, error) {
	if opts.Concurrency < 1 {
		return Result{}, fmt.Errorf("concurrency must be at least 1, not %d", opts.Concurrency)
	}
	if (opts.Duration > 0) == (opts.Calls > 0) {
		return Result{}, fmt.Errorf("set exactly one of duration and calls")
	}
	// Calls get ctx itself: a call in flight when the duration ends
	// finishes normally instead of failing with the run's deadline.
	stop := ctx
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		stop, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	workers := make([]worker, opts.Concurrency)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.calls = opts.Calls / opts.Concurrency
		if i < opts.Calls%opts.Concurrency {
			w.calls++
		}
		if opts.Rate > 0 {
			w.interval = time.Duration(float64(opts.Concurrency) / opts.Rate * float64(time.Second))
			w.next = start.Add(time.Duration(i) * w.interval / time.Duration(opts.Concurrency))
		}
		wg.Go(func() { w.run(ctx, stop, call, opts.Calls > 0) })
	}
	wg.Wait()
	return summarise(workers, time.Since(start)), nil
}

// worker records its own latencies so that workers share nothing.
type worker struct {
	calls     int // the worker's share when the run is bounded by calls
	interval  time.Duration
	next      time.Time
	latencies []time.Duration
	errors    int
	firstErr  error
}

func (w *worker) run(ctx, stop context.Context, call Call, counted bool) {
	for i := 0; !counted || i < w.calls; i++ {
		begin := time.Now()
		if w.interval > 0 {
			if d := time.Until(w.next); d > 0 {
				select {
				case <-time.After(d):
				case <-stop.Done():
					return
				}
			}
			begin = w.next
			w.next = w.next.Add(w.interval)
		}
		if stop.Err() != nil {
			return
		}
		err := call(ctx)
		if err != nil && ctx.Err() != nil {
			return // interrupted
		}
		w.latencies = append(w.latencies, time.Since(begin))
		if err != nil {
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
		}
	}
}

func summarise(workers []worker, elapsed time.Duration) Result {
	parts := make([]Result, len(workers))
	for i, w := range workers {
		parts[i] = Result{Latencies: w.latencies, Errors: w.errors, FirstError: w.firstErr}
	}
	r := Combine(parts...)
	r.Elapsed = elapsed
	return r
}

// Combine merges results, such as several rounds of one measurement
// interleaved with another's so that both see the same machine load: calls,
// errors and elapsed time add up, and percentiles cover every call.
func Combine(rs ...Result) Result {
	var out Result
	for _, r := range rs {
		out.Latencies = append(out.Latencies, r.Latencies...)
		out.Errors += r.Errors
		out.Elapsed += r.Elapsed
		if out.FirstError == nil {
			out.FirstError = r.FirstError
		}
	}
	slices.Sort(out.Latencies)
	all := out.Latencies
	out.Calls = len(all)
	out.P50, out.P90, out.P99, out.P999 = Percentile(all, 50), Percentile(all, 90), Percentile(all, 99), Percentile(all, 99.9)
	return out
}

// Percentile returns the p-th percentile of sorted (nearest rank), or zero
// when sorted is empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error from pushing an exact rank up by one.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

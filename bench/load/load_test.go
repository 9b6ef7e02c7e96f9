package load_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/bench/load"
)

func TestRunCountsCallsAndErrors(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0, 1e6} {
		var n atomic.Int64
		call := func(context.Context) error {
			if n.Add(1)%10 == 0 {
				return errors.New("every tenth call fails")
			}
			return nil
		}
		r, err := load.Run(context.Background(), call, load.Options{Concurrency: 3, Calls: 100, Rate: rate})
		if err != nil {
			t.Fatal(err)
		}
		if r.Calls != 100 || r.Errors != 10 || n.Load() != 100 {
			t.Errorf("rate %v: calls=%d errors=%d made=%d, want 100, 10, 100", rate, r.Calls, r.Errors, n.Load())
		}
		if r.FirstError == nil || r.P50 > r.P90 || r.P90 > r.P99 || r.P99 > r.P999 {
			t.Errorf("rate %v: inconsistent result %+v", rate, r)
		}
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	call := func(context.Context) error {
		if n.Add(1) == 50 {
			cancel()
		}
		return nil
	}
	r, err := load.Run(ctx, call, load.Options{Concurrency: 2, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Calls that checked the context before the cancel may still finish.
	if r.Calls < 49 || int64(r.Calls) > n.Load() || n.Load() > 1000 {
		t.Errorf("%d calls recorded, %d made, after cancelling at the 50th", r.Calls, n.Load())
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []load.Options{
		{Concurrency: 0, Calls: 1},
		{Concurrency: 1},
		{Concurrency: 1, Calls: 1, Duration: time.Second},
	} {
		if _, err := load.Run(context.Background(), func(context.Context) error { return nil }, opts); err == nil {
			t.Errorf("%+v: no error", opts)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var sorted []time.Duration
	for i := 1; i <= 1000; i++ {
		sorted = append(sorted, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 500, 90: 900, 99: 990, 99.9: 999, 100: 1000, 0: 1} {
		if got := load.Percentile(sorted, p); got != want {
			t.Errorf("p%v = %d, want %d", p, got, want)
		}
	}
	if load.Percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not zero")
	}
}

func TestCombineAddsUp(t *testing.T) {
	t.Parallel()
	a := load.Result{Latencies: []time.Duration{1, 2}, Elapsed: time.Second, Errors: 1}
	b := load.Result{Latencies: []time.Duration{4, 3}, Elapsed: time.Second, FirstError: errors.New("x")}
	r := load.Combine(a, b)
	if r.Calls != 4 || r.Errors != 1 || r.Elapsed != 2*time.Second || r.FirstError == nil || r.P50 != 2 || r.P999 != 4 {
		t.Fatalf("combined %+v", r)
	}
	if r.Throughput() != 2 {
		t.Fatalf("throughput %v, want 2/s", r.Throughput())
	}
}

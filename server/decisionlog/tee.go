package decisionlog

import (
	"context"
	"errors"
	"sync"
)

// Tee logs every record to several writers (a file and an OTLP collector),
// each with its own queue, sink and retries, so that a slow sink delays
// only its own writes. Log succeeds once every writer has accepted the
// record, and returns the first writer's error otherwise: in Block mode a
// decision is acknowledged only once all its writers hold its record. A
// record refused by a later writer may already be in an earlier one's log;
// it records a decision the caller did not receive as answered. Tee is safe
// for concurrent use.
type Tee struct {
	ws []*Writer

	mu      sync.Mutex
	healthy []bool
}

// NewTee logs to every writer in ws; they should share a mode.
func NewTee(ws ...*Writer) *Tee {
	t := &Tee{ws: ws, healthy: make([]bool, len(ws))}
	for i := range t.healthy {
		t.healthy[i] = true
	}
	return t
}

// Log hands r to each writer in turn.
func (t *Tee) Log(ctx context.Context, r Record) error {
	for _, w := range t.ws {
		if err := w.Log(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Mode is the first writer's mode.
func (t *Tee) Mode() Mode { return t.ws[0].Mode() }

// OnSinkHealth calls f with whether every writer's sink is healthy, now and
// on every change of one of them.
func (t *Tee) OnSinkHealth(f func(healthy bool)) {
	for i, w := range t.ws {
		w.OnSinkHealth(func(h bool) {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.healthy[i] = h
			all := true
			for _, ok := range t.healthy {
				all = all && ok
			}
			f(all)
		})
	}
}

// Close closes every writer, concurrently, within ctx.
func (t *Tee) Close(ctx context.Context) error {
	errs := make([]error, len(t.ws))
	var wg sync.WaitGroup
	for i, w := range t.ws {
		wg.Go(func() { errs[i] = w.Close(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

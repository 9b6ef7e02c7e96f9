package decisionlog_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/server/decisionlog"
)

// BenchmarkLogParallel measures Log under parallel load into a real file,
// asynchronous and durable (WithSync: acknowledged after the group fsync).
func BenchmarkLogParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		sync bool
	}{{"async", false}, {"sync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			sink, err := decisionlog.OpenSink(filepath.Join(b.TempDir(), "decisions.log"), 1024, 1)
			if err != nil {
				b.Fatal(err)
			}
			counted := &countingSyncer{Syncer: sink.(decisionlog.Syncer)}
			w, err := decisionlog.New(counted, decisionlog.WithSync(bc.sync))
			if err != nil {
				b.Fatal(err)
			}
			r := record(b, "01a2085a-236d-7561-86c8-7be7e5cce8e2", types.RecordMap{"env": types.String("prod")}, nil)
			b.SetParallelism(16) // callers waiting on a sync are goroutines, not CPUs
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.Log(b.Context(), r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if err := w.Close(b.Context()); err != nil {
				b.Fatal(err)
			}
			if n := counted.syncs.Load(); n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "records/fsync")
			}
		})
	}
}

// countingSyncer counts the syncs of its sink.
type countingSyncer struct {
	decisionlog.Syncer
	syncs atomic.Int64
}

func (s *countingSyncer) Sync() error {
	s.syncs.Add(1)
	return s.Syncer.Sync()
}

func (s *countingSyncer) Close() error { return s.Syncer.(interface{ Close() error }).Close() }

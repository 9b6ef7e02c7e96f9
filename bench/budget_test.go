package bench

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/telemetry"
)

// BenchmarkBudget splits one Authorize call (p10k-e100k) into the parts
// that run on the CPU, each measured alone, for the latency budget that
// `load -budget` measures over loopback (README.md): protobuf on both
// ends, the handler's steps, the engine around Decide, a clock read and
// the decision metrics. The decision id and the interceptors are measured
// in their own packages (server/engine BenchmarkDecisionID, server/grpcapi
// BenchmarkInterceptors).
func BenchmarkBudget(b *testing.B) {
	f := fixtureFor(b, "p10k-e100k")
	svc := f.service()
	ctx := context.Background()
	n := len(f.sc.Queries)
	wires := make([][]byte, n)
	resps := make([]*pdpv1.AuthorizeResponse, n)
	respWires := make([][]byte, n)
	for i, q := range f.sc.Queries {
		var err error
		if wires[i], err = proto.Marshal(q.Request); err != nil {
			b.Fatal(err)
		}
		if resps[i], err = svc.Authorize(ctx, q.Request); err != nil {
			b.Fatal(err)
		}
		if respWires[i], err = proto.Marshal(resps[i]); err != nil {
			b.Fatal(err)
		}
	}
	each := func(name string, op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := op(i % n); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	each("proto/marshal-request", func(i int) error { _, err := proto.Marshal(f.sc.Queries[i].Request); return err })
	each("proto/unmarshal-request", func(i int) error { return proto.Unmarshal(wires[i], &pdpv1.AuthorizeRequest{}) })
	each("proto/marshal-response", func(i int) error { _, err := proto.Marshal(resps[i]); return err })
	each("proto/unmarshal-response", func(i int) error { return proto.Unmarshal(respWires[i], &pdpv1.AuthorizeResponse{}) })
	each("decode", func(i int) error {
		_, err := grpcapi.DecodeRequest(f.sc.Queries[i].Request, engine.DefaultLimits)
		return err
	})
	each("decide", func(i int) error { _, err := f.snap.Decide(ctx, f.decoded[i]); return err })
	eng := engine.New(engine.Fixed(f.snap))
	each("engine", func(i int) error { _, err := eng.Evaluate(ctx, grpcapi.FrontEnd, f.decoded[i]); return err })
	d, err := f.snap.Decide(ctx, f.decoded[0])
	if err != nil {
		b.Fatal(err)
	}
	each("encode", func(int) error { grpcapi.EncodeDecision(d, "0193b1d0-0000-7000-8000-000000000000"); return nil })
	each("handler", func(i int) error { _, err := svc.Authorize(ctx, f.sc.Queries[i].Request); return err })
	each("clock", func(int) error { _ = time.Now(); return nil })
	metrics, err := telemetry.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	each("metrics", func(int) error { metrics.ObserveDecision(grpcapi.FrontEnd, d, nil, time.Microsecond); return nil })
}

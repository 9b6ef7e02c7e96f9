package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// OTLPSink is a sink that exports decision records as OpenTelemetry log
// records, for an OpenTelemetry Collector. Each JSON line becomes one log
// record whose body is the line and whose attributes are decision_id,
// decision, front_end and policy_revision; its timestamp is the decision's.
//
// The Writer drives it like the file sink: each Write is one batch of whole
// lines, exported in one call. A batch the exporter refuses is refused
// whole (Write returns 0), so the Writer marks the sink unhealthy and
// retries the batch with backoff: nothing is dropped and no record is
// exported twice by the PDP (a collector that received a batch but failed
// to answer may still see it twice, as OTLP allows). Give the exporter no
// retries and no queue of its own, so that failures reach the Writer
// (counted, and applied to Log by the mode). Close shuts the exporter down
// after the Writer has exported everything. OTLPSink is safe for
// concurrent use.
type OTLPSink struct {
	exporter sdklog.Exporter
	timeout  time.Duration
	provider *sdklog.LoggerProvider
	logger   log.Logger

	mu    sync.Mutex // one batch at a time
	batch []sdklog.Record
}

// OTLPOption configures an OTLPSink.
type OTLPOption func(*OTLPSink)

// WithExportTimeout bounds one export (default 10s).
func WithExportTimeout(d time.Duration) OTLPOption {
	return func(s *OTLPSink) { s.timeout = d }
}

// NewOTLPSink returns a sink that exports through exporter, with res as
// the records' resource (nil: none).
func NewOTLPSink(exporter sdklog.Exporter, res *resource.Resource, opts ...OTLPOption) *OTLPSink {
	s := &OTLPSink{exporter: exporter, timeout: 10 * time.Second}
	for _, opt := range opts {
		opt(s)
	}
	// The provider only stamps resource and scope on the records; its
	// processor hands them back to Write, which exports them itself.
	popts := []sdklog.LoggerProviderOption{sdklog.WithProcessor(collector{s})}
	if res != nil {
		popts = append(popts, sdklog.WithResource(res))
	}
	s.provider = sdklog.NewLoggerProvider(popts...)
	s.logger = s.provider.Logger("github.com/intentpdp/intentpdp/server/decisionlog")
	return s
}

// collector is the provider's processor: it appends each record to the
// batch being built by Write.
type collector struct{ s *OTLPSink }

func (c collector) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c collector) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.s.batch = append(c.s.batch, r.Clone())
	return nil
}
func (c collector) Shutdown(context.Context) error   { return nil }
func (c collector) ForceFlush(context.Context) error { return nil }

// lineFields are the fields of a line that become attributes.
type lineFields struct {
	DecisionID string    `json:"decision_id"`
	Time       time.Time `json:"time"`
	FrontEnd   string    `json:"front_end"`
	Decision   string    `json:"decision"`
	Revision   string    `json:"policy_revision"`
}

// Write exports the lines of p, all or none.
func (s *OTLPSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batch = s.batch[:0]
	ctx := context.Background()
	now := time.Now()
	for line := range bytes.Lines(p) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		var f lineFields
		_ = json.Unmarshal(line, &f) // the writer encoded it; a field it lacks is left out
		var r log.Record
		r.SetTimestamp(f.Time)
		r.SetObservedTimestamp(now)
		r.SetSeverity(log.SeverityInfo)
		r.SetSeverityText("INFO")
		r.SetEventName("intentpdp.decision")
		r.SetBody(attribute.StringValue(string(line)))
		attrs := make([]attribute.KeyValue, 0, 4)
		for _, kv := range [...]struct{ k, v string }{
			{"decision_id", f.DecisionID}, {"decision", f.Decision}, {"front_end", f.FrontEnd}, {"policy_revision", f.Revision},
		} {
			if kv.v != "" {
				attrs = append(attrs, attribute.String(kv.k, kv.v))
			}
		}
		r.AddAttributes(attrs...)
		s.logger.Emit(ctx, r)
	}
	if len(s.batch) == 0 {
		return len(p), nil
	}
	ectx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.exporter.Export(ectx, s.batch); err != nil {
		return 0, fmt.Errorf("otlp export of %d records: %w", len(s.batch), err)
	}
	return len(p), nil
}

// Close shuts the exporter down. The Writer calls it once every record has
// been exported.
func (s *OTLPSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return errors.Join(s.exporter.Shutdown(ctx), s.provider.Shutdown(ctx))
}

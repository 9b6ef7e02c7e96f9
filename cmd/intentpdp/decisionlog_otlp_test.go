package main

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/intentpdp/intentpdp/internal/testutil/otlplogs"
)

// TestServeDecisionLogToOTLP runs the binary with a file log and an OTLP
// log together, the collector refusing its first exports: every decision
// reaches both, the refusals show as export errors, and SIGTERM flushes.
func TestServeDecisionLogToOTLP(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		protocol string
		start    func(testing.TB, int) *otlplogs.Receiver
	}{{"grpc", otlplogs.StartGRPC}, {"http/protobuf", otlplogs.StartHTTP}} {
		t.Run(tt.protocol, func(t *testing.T) {
			t.Parallel()
			recv := tt.start(t, 2)
			path := filepath.Join(t.TempDir(), "decisions.log")
			p := startServe(t, nil, "--decision-log", path,
				"--decision-log-otlp-endpoint", "http://"+recv.Addr, "--decision-log-otlp-protocol", tt.protocol)
			const n = 20
			for range n {
				if _, err := p.client.Authorize(t.Context(), searchCodeRequest()); err != nil {
					t.Fatal(err)
				}
			}
			pollUntil(t, "the refused exports to be retried", func() bool {
				mfs := p.scrape(t)
				return sample(mfs, "intentpdp_decision_log_otlp_export_errors_total") == 2 &&
					sample(mfs, "intentpdp_decision_log_otlp_written_total") == n
			})
			p.stop(t)
			var fileIDs, otlpIDs []string
			for _, l := range readLog(t, path) {
				fileIDs = append(fileIDs, l.DecisionID)
			}
			for _, r := range recv.Records() {
				if r.Service != "intentpdp" || r.Attr("front_end") != "grpc" || r.Attr("decision") != "ALLOW" {
					t.Fatalf("OTLP record: service %q, attributes %v", r.Service, r.GetAttributes())
				}
				otlpIDs = append(otlpIDs, r.Attr("decision_id"))
			}
			if len(fileIDs) != n || !slices.Equal(fileIDs, otlpIDs) {
				t.Fatalf("file log %v, OTLP log %v", fileIDs, otlpIDs)
			}
		})
	}
}

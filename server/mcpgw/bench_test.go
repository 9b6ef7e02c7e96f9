package mcpgw

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/server/engine"
)

type benchBearer struct{}

func (benchBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer bench")
	return http.DefaultTransport.RoundTrip(r)
}

// BenchmarkToolCall measures one allowed tools/call through the gateway
// against the same call made to the upstream directly, both as a go-sdk
// client over Streamable HTTP on loopback; overhead_us and ratio compare
// the two measured in the same run.
func BenchmarkToolCall(b *testing.B) {
	f := newFixture(b)
	g, err := New(context.Background(), f.eng, Config{Principal: `Agent::"alice"`, Upstreams: []UpstreamConfig{{Name: "repos", URL: f.url}}}, engine.DefaultLimits, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	gw := httptest.NewServer(g.HTTPHandler(HTTPOptions{Resource: "http://gateway"}))
	defer gw.Close()
	connect := func(endpoint string, hc *http.Client) *mcp.ClientSession {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
		if err != nil {
			b.Fatal(err)
		}
		return cs
	}
	direct := connect(f.url, http.DefaultClient)
	defer direct.Close()
	proxied := connect(gw.URL+Path, &http.Client{Transport: benchBearer{}})
	defer proxied.Close()
	params := &mcp.CallToolParams{Name: "pay", Arguments: map[string]any{"owner": "acme", "amount": 42}}
	run := func(cs *mcp.ClientSession) {
		for range b.N {
			res, err := cs.CallTool(context.Background(), params)
			if err != nil || res.IsError {
				b.Fatalf("call: %v %v", err, res)
			}
		}
	}
	b.ResetTimer()
	// Interleave the two, so a load change on the machine hits both.
	var directNs, proxiedNs int64
	for range 4 {
		directNs += timed(func() { run(direct) })
		proxiedNs += timed(func() { run(proxied) })
	}
	b.StopTimer()
	d, p := float64(directNs)/float64(4*b.N), float64(proxiedNs)/float64(4*b.N)
	b.ReportMetric(d/1e3, "direct_us/op")
	b.ReportMetric(p/1e3, "gateway_us/op")
	b.ReportMetric((p-d)/1e3, "overhead_us")
	b.ReportMetric(p/d, "ratio")
}

func timed(fn func()) int64 {
	start := time.Now()
	fn()
	return int64(time.Since(start))
}

package authzen_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/authzen"
	"github.com/intentpdp/intentpdp/server/engine"
)

// BenchmarkHandler measures the AuthZEN handlers without the network:
// JSON decoding, mapping, Evaluate and encoding, on the example bundle.
func BenchmarkHandler(b *testing.B) {
	store := policystore.NewStore()
	bundle, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := store.Activate(context.Background(), bundle); err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	authzen.New(engine.New(store)).Register(mux)
	cases := []struct{ name, path, body, want string }{
		{"evaluation", authzen.PathEvaluation,
			`{"subject": {"type": "Agent", "id": "code-reviewer"}, "action": {"name": "read_file", "properties": {"purpose": "code-review"}}, "resource": {"type": "Document", "id": "payments-api/README.md"}, "context": {"attempt": 1}}`,
			`"decision":true`},
		{"action-search", authzen.PathSearchAction,
			`{"subject": {"type": "Agent", "id": "code-reviewer"}, "resource": {"type": "Repository", "id": "payments-api"}}`,
			`"count":3`},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			serve := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body)))
				return rec
			}
			if rec := serve(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), c.want) {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}

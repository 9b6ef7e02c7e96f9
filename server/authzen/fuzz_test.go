package authzen_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/authzen"
	"github.com/intentpdp/intentpdp/server/engine"
)

// FuzzAPI sends arbitrary bodies to every POST endpoint: each answer is a
// decision (200) or a client error, never a server error or a panic.
func FuzzAPI(f *testing.F) {
	for _, s := range []string{
		`{"subject": {"type": "user", "id": "alice@example.com", "properties": {"a": [1, {"b": true}]}}, "action": {"name": "can_read", "properties": {"purpose": "x"}}, "resource": {"type": "account", "id": "123"}, "context": {"n": 1e2}}`,
		`{"action": {"name": "can_read"}, "options": {"evaluations_semantic": "deny_on_first_deny"}, "evaluations": [{}, {"subject": {"type": "user", "id": "bob@example.com"}}]}`,
		`{"subject": {"type": "user"}, "action": {"name": "can_read"}, "resource": {"type": "account", "id": "123"}, "page": {"limit": -1, "token": "MDo="}}`,
		`{"context": {"a": {"b": {"c": {"d": null}}}}}`,
	} {
		f.Add(s)
	}
	store := policystore.NewStore()
	b, err := policystore.LoadDir("testdata/spec-search")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := store.Activate(f.Context(), b); err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	authzen.New(engine.New(store), authzen.WithLimits(engine.Limits{MaxDepth: 4, MaxValues: 64})).Register(mux)
	paths := []string{authzen.PathEvaluation, authzen.PathEvaluations, authzen.PathSearchSubject, authzen.PathSearchResource, authzen.PathSearchAction}
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range paths {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, p, strings.NewReader(body)))
			if rec.Code >= 500 || (rec.Code != 200 && rec.Code != 400 && rec.Code != 413) {
				t.Fatalf("%s: status %d for %q: %s", p, rec.Code, body, rec.Body)
			}
		}
	})
}

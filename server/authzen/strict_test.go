package authzen_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/server/authzen"
)

// TestAmbiguousBodiesRefused sends bodies that a proxy in front of the PDP
// could read differently from the PDP (first or last of duplicate names,
// exact or case-insensitive member names): each is refused, never
// decided.
func TestAmbiguousBodiesRefused(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	const (
		carol    = `{"type": "user", "id": "carol@example.com"}`
		dave     = `{"type": "user", "id": "dave"}`
		transfer = `{"name": "can_transfer"}`
		account  = `{"type": "account", "id": "123"}`
	)
	tests := []struct{ name, path, body string }{
		{"duplicate top-level member", authzen.PathEvaluation, `{"subject": ` + dave + `, "subject": ` + carol + `, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}}`},
		{"duplicate member in context", authzen.PathEvaluation, `{"subject": ` + carol + `, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999, "amount": 5000}}`},
		{"duplicate member deep in context", authzen.PathEvaluation, `{"subject": ` + carol + `, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999, "x": [{"a": 1, "a": 2}]}}`},
		{"duplicate member in properties", authzen.PathEvaluation, `{"subject": {"type": "user", "id": "dave", "properties": {"clearance": 3, "clearance": 1}}, "action": {"name": "can_audit"}, "resource": ` + account + `}`},
		{"duplicate member in an entity", authzen.PathEvaluation, `{"subject": {"type": "user", "id": "dave", "id": "carol@example.com"}, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}}`},
		{"duplicate member in a batch item", authzen.PathEvaluations, `{"action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}, "evaluations": [{"subject": ` + dave + `, "subject": ` + carol + `}]}`},
		{"Subject for subject", authzen.PathEvaluation, `{"Subject": ` + carol + `, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}}`},
		{"SUBJECT beside subject", authzen.PathEvaluation, `{"subject": ` + carol + `, "SUBJECT": ` + dave + `, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}}`},
		{"Type in an entity", authzen.PathEvaluation, `{"subject": {"Type": "user", "id": "carol@example.com"}, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}}`},
		{"Unicode case folding (long s)", authzen.PathEvaluation, `{"\u017fubject": ` + carol + `, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}}`},
		{"Evaluations in a batch", authzen.PathEvaluations, `{"action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999}, "Evaluations": [{"subject": ` + carol + `}]}`},
		{"Page in a search", authzen.PathSearchResource, `{"subject": ` + carol + `, "action": ` + transfer + `, "resource": {"type": "account"}, "Page": {"limit": 1}}`},
		{"invalid UTF-8 in a member name", authzen.PathEvaluation, `{"subject": ` + carol + `, "action": ` + transfer + `, "resource": ` + account + `, "context": {"amount": 999, ` + "\"n\xffote\"" + `: "x"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, got := p.post(t, tt.path, tt.body)
			errObj, _ := got["error"].(map[string]any)
			msg, _ := errObj["message"].(string)
			if code != http.StatusBadRequest || !strings.Contains(msg, "malformed JSON") {
				t.Errorf("status %d, body %v; want 400 malformed JSON", code, got)
			}
		})
	}
	t.Run("names inside context are the caller's", func(t *testing.T) {
		t.Parallel()
		code, got := p.post(t, authzen.PathEvaluation, `{"subject": `+carol+`, "action": `+transfer+`, "resource": `+account+`, "context": {"amount": 999, "Amount": 5000, "Subject": "x"}}`)
		if code != http.StatusOK || got["decision"] != true {
			t.Errorf("status %d, body %v; want an allow", code, got)
		}
	})
}

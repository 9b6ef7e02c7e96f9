package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/authzen"
	"github.com/intentpdp/intentpdp/server/engine"
)

// authzenServer serves intentpdp's AuthZEN API for the scenario on
// loopback, and returns its handler too.
func authzenServer(t *testing.T, name string) (*httptest.Server, http.Handler) {
	t.Helper()
	spec, _ := scenario.Find(name)
	store := policystore.NewStore()
	if _, err := store.Activate(context.Background(), scenario.Build(spec).Bundle); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	authzen.New(engine.New(store)).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, mux
}

// dataAPI serves OPA's data API shape ({"input": …} in, {"result": …}
// out) on loopback, deciding with decide; OPA itself is not built here.
func dataAPI(t *testing.T, decide func(input []byte) bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input json.RawMessage }
		if r.URL.Path != "/v1/data/"+scenario.RegoPackage+"/allow" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]bool{"result": decide(req.Input)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCompareOPA runs the comparison against one AuthZEN API, then two and
// the HTTP floor in a process of its own, and a data API that forwards
// each input to intentpdp, for a moment: all decide alike, every call
// succeeds, and the report gives the ratios.
func TestCompareOPA(t *testing.T) {
	t.Parallel()
	pdp, handler := authzenServer(t, "p10-e1k")
	other, _ := authzenServer(t, "p10-e1k")
	forward := dataAPI(t, func(input []byte) bool {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, authzen.PathEvaluation, bytes.NewReader(input)))
		var d struct{ Decision bool }
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != http.StatusOK {
			t.Errorf("AuthZEN: %d %s", rec.Code, rec.Body)
		}
		return d.Decision
	})
	floor, stop := serveInBackground(t, []string{"-scenario", "p10-e1k", "-serve-http-floor", "127.0.0.1:0"}, "serving the HTTP floor on ")
	defer stop()
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"-authzen", pdp.URL}, []string{"  intentpdp ", "intentpdp/OPA: p50 "}},
		{[]string{"-authzen", pdp.URL + "," + other.URL, "-http-floor", "http://" + floor},
			[]string{"  intentpdp-1 ", "  intentpdp-2 ", "  floor ", "intentpdp-1/OPA: p50 ", "intentpdp-2/OPA: p50 ",
				"p50 over the floor: intentpdp-1 ", "; throughput of the floor: intentpdp-1 "}},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"-scenario", "p10-e1k", "-opa", forward.URL,
			"-concurrency", "1,4", "-duration", "100ms", "-rounds", "2"}, c.args...), &out)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range append(c.wants, "30 queries, all decided alike", "concurrency 1\n", "concurrency 4\n", "  OPA ") {
			if !strings.Contains(out.String(), want) {
				t.Errorf("report lacks %q:\n%s", want, out.String())
			}
		}
		if strings.Contains(out.String(), "first error") {
			t.Errorf("calls failed:\n%s", out.String())
		}
	}
}

// TestCompareOPARefusesOtherDecisions: a data API that allows everything
// disagrees with the scenario, so nothing is timed.
func TestCompareOPARefusesOtherDecisions(t *testing.T) {
	t.Parallel()
	pdp, _ := authzenServer(t, "p10-e1k")
	allowAll := dataAPI(t, func([]byte) bool { return true })
	var out bytes.Buffer
	err := run(context.Background(), []string{"-scenario", "p10-e1k", "-authzen", pdp.URL, "-opa", allowAll.URL,
		"-concurrency", "1", "-duration", "100ms", "-rounds", "1"}, &out)
	if err == nil || !strings.Contains(err.Error(), "OPA: allow=true, the scenario expects false") {
		t.Fatalf("err = %v, want OPA's disagreement; report:\n%s", err, out.String())
	}
	if out.Len() > 0 {
		t.Errorf("measured despite the disagreement:\n%s", out.String())
	}
}

// TestWriteOPA writes the scenario for OPA: a Rego rule for every Cedar
// policy, and each entity's ancestors closed through the hierarchy.
func TestWriteOPA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := run(context.Background(), []string{"-scenario", "p1k-e1k", "-write-opa", dir}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	rego, err := os.ReadFile(filepath.Join(dir, "policy.rego"))
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := scenario.Find("p1k-e1k")
	cedar := scenario.Build(spec).Bundle.Files["policies.cedar"]
	ids := func(re string, src []byte) []string {
		var out []string
		for _, m := range regexp.MustCompile(re).FindAllSubmatch(src, -1) {
			out = append(out, string(m[1]))
		}
		return out
	}
	if c, r := ids(`@id\("([^"]+)"\)`, cedar), ids(`(?m)^# (\S+)$`, rego); !slices.Equal(c, r) || len(c) != 1001 {
		t.Errorf("Cedar policies %d, Rego rules %d; first difference at %d", len(c), len(r), firstDifference(c, r))
	}
	data, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Entities map[string][]string }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]string{
		"Agent::t7-a1":       {"Team::t7-dev", "Tenant::t7"},
		"Action::read":       {"Action::readActions"},
		"Tenant::t7":         {},
		"Folder::t7-archive": {"Tenant::t7"},
	} {
		if got, ok := doc.Entities[key]; !ok || !slices.Equal(got, want) {
			t.Errorf("%s: ancestors %q (present %v), want %q", key, got, ok, want)
		}
	}
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/intentpdp/intentpdp/bench/load"
	"github.com/intentpdp/intentpdp/bench/scenario"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/authzen"
)

// compareOPA drives intentpdp's AuthZEN endpoint and OPA's data API, each
// a server of its own, with the same AuthZEN evaluations of the scenario's
// queries (OPA gets each as its input) over HTTP, in alternating rounds.
// With several AuthZEN servers (builds to compare), each is measured in the
// same rounds and against the same OPA; with an HTTP floor (a
// -serve-http-floor process), so is the HTTP exchange alone. Before timing,
// every query must get the scenario's decision from every server: a
// comparison of different answers would be meaningless. Every timed reply
// is checked too.
func compareOPA(ctx context.Context, cfg config, sc *scenario.Scenario, out io.Writer) error {
	floor, pdps, err := comparisonTargets(cfg, sc)
	if err != nil {
		return err
	}
	targets := pdps
	if floor != nil {
		targets = append([]*httpTarget{floor}, pdps...)
	}
	for i, q := range sc.Queries {
		for _, t := range targets {
			if err := t.check(ctx, i); err != nil {
				return fmt.Errorf("query %s: %w: does the server serve the scenario %s?", q.Name, err, sc.Spec.Name)
			}
		}
	}
	fmt.Fprintf(out, "scenario %s: %d queries, all decided alike; %s per row in %d alternating rounds; GOMAXPROCS %d\n",
		sc.Spec.Name, len(sc.Queries), cfg.duration, cfg.rounds, runtime.GOMAXPROCS(0))
	for _, t := range targets {
		fmt.Fprintf(out, "  %-11s %s\n", t.name, t.url)
	}
	for _, c := range cfg.concurrency {
		opts := load.Options{Concurrency: c, Duration: cfg.duration / time.Duration(cfg.rounds), Rate: cfg.rate}
		rounds := map[*httpTarget][]load.Result{}
		for round := range cfg.rounds {
			for k := range targets {
				t := targets[(k+round)%len(targets)] // each goes first in turn
				res, err := load.Run(ctx, t.call(), opts)
				if err != nil {
					return err
				}
				rounds[t] = append(rounds[t], res)
			}
		}
		res := map[*httpTarget]load.Result{}
		for _, t := range targets {
			res[t] = load.Combine(rounds[t]...)
		}
		fmt.Fprintf(out, "\nconcurrency %d\n", c)
		reportComparison(out, targets, floor, pdps, res)
	}
	return nil
}

// comparisonTargets are the floor, if any, and the PDPs: intentpdp's
// servers, then OPA.
func comparisonTargets(cfg config, sc *scenario.Scenario) (floor *httpTarget, pdps []*httpTarget, err error) {
	bodies, inputs, want, err := evaluations(sc)
	if err != nil {
		return nil, nil, err
	}
	conns := slices.Max(cfg.concurrency)
	authzenTarget := func(name, base string) *httpTarget {
		return newHTTPTarget(name, base+authzen.PathEvaluation, bodies, want, conns, func(r reply) *bool { return r.Decision })
	}
	if cfg.httpFloorURL != "" {
		floor = authzenTarget("floor", cfg.httpFloorURL)
	}
	for k, u := range cfg.authzenURLs {
		name := "intentpdp"
		if len(cfg.authzenURLs) > 1 {
			name = fmt.Sprintf("intentpdp-%d", k+1)
		}
		pdps = append(pdps, authzenTarget(name, u))
	}
	opa := newHTTPTarget("OPA", cfg.opaURL+"/v1/data/"+scenario.RegoPackage+"/allow", inputs, want, conns,
		func(r reply) *bool { return r.Result })
	return floor, append(pdps, opa), nil
}

// reportComparison prints one level's results: each target's, each
// intentpdp's ratios to OPA (the last of pdps), the PDPs' differences to
// the floor, and the calls each target got.
func reportComparison(out io.Writer, targets []*httpTarget, floor *httpTarget, pdps []*httpTarget, res map[*httpTarget]load.Result) {
	for _, t := range targets {
		fmt.Fprintf(out, "  %-11s %s\n", t.name, res[t])
	}
	o := res[pdps[len(pdps)-1]]
	for _, t := range pdps[:len(pdps)-1] {
		r := res[t]
		fmt.Fprintf(out, "  %s/OPA: p50 %.2f×  p99 %.2f×  throughput %.2f×\n", t.name,
			r.P50.Seconds()/o.P50.Seconds(), r.P99.Seconds()/o.P99.Seconds(), r.Throughput()/o.Throughput())
	}
	if floor != nil {
		f := res[floor]
		fmt.Fprintf(out, "  p50 over the floor:")
		for _, t := range pdps {
			fmt.Fprintf(out, " %s %+.1f µs", t.name, (res[t].P50-f.P50).Seconds()*1e6)
		}
		fmt.Fprintf(out, "; throughput of the floor:")
		for _, t := range pdps {
			fmt.Fprintf(out, " %s %.0f%%", t.name, 100*res[t].Throughput()/f.Throughput())
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "  calls:")
	for _, t := range targets {
		fmt.Fprintf(out, " %s %d", t.name, res[t].Calls)
	}
	fmt.Fprintln(out)
	for _, t := range targets {
		if err := res[t].FirstError; err != nil {
			fmt.Fprintf(out, "  first error of %s: %v\n", t.name, err)
		}
	}
}

// evaluations are the scenario's queries as AuthZEN evaluation bodies, the
// same as OPA inputs ({"input": evaluation}), and their decisions.
func evaluations(sc *scenario.Scenario) (bodies, inputs [][]byte, want []bool, err error) {
	for _, q := range sc.Queries {
		e, err := authzenEvaluation(q.Request)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("query %s: %w", q.Name, err)
		}
		// Maps of strings, numbers and booleans: cannot fail.
		body, _ := json.Marshal(e)
		input, _ := json.Marshal(map[string]any{"input": e})
		bodies, inputs, want = append(bodies, body), append(inputs, input), append(want, q.Allow)
	}
	return bodies, inputs, want, nil
}

// serveHTTPFloor serves the floor of the HTTP comparison on listen until
// ctx ends: an AuthZEN evaluation endpoint that answers each of the
// scenario's evaluations with its expected decision, looked up by the
// request's bytes, so that a call costs the HTTP exchange (Go's net/http
// server, as intentpdp's and OPA's are) and no decision work.
func serveHTTPFloor(ctx context.Context, sc *scenario.Scenario, listen string, out io.Writer) error {
	bodies, _, want, err := evaluations(sc)
	if err != nil {
		return err
	}
	answers := make(map[string][]byte, len(bodies))
	for i, b := range bodies {
		answers[string(b)] = fmt.Appendf(nil, `{"decision":%v}`+"\n", want[i])
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+authzen.PathEvaluation, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		answer, ok := answers[string(body)]
		if err != nil || !ok {
			http.Error(w, "not one of the scenario's evaluations", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	fmt.Fprintf(out, "serving the HTTP floor on %s\n", lis.Addr())
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return srv.Close()
	}
}

// httpTarget is a server deciding over HTTP (a PDP or the floor): the URL
// a query's body is posted to, and where the decision is in the reply.
type httpTarget struct {
	name     string
	url      string
	bodies   [][]byte
	want     []bool
	client   *http.Client
	decision func(reply) *bool
	next     atomic.Uint64
}

// reply holds the decision of either API: AuthZEN's "decision", the data
// API's "result".
type reply struct {
	Decision *bool `json:"decision"`
	Result   *bool `json:"result"`
}

// newHTTPTarget keeps up to conns connections open, one per call in flight.
func newHTTPTarget(name, url string, bodies [][]byte, want []bool, conns int, decision func(reply) *bool) *httpTarget {
	transport := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}
	return &httpTarget{name: name, url: url, bodies: bodies, want: want, client: &http.Client{Transport: transport}, decision: decision}
}

// call decides the queries in turn and fails on a decision other than the
// expected one.
func (t *httpTarget) call() load.Call {
	return func(ctx context.Context) error {
		return t.check(ctx, int(t.next.Add(1)%uint64(len(t.bodies))))
	}
}

// check posts query i and compares the decision with the expected one.
func (t *httpTarget) check(ctx context.Context, i int) error {
	allow, err := t.decide(ctx, t.bodies[i])
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if allow != t.want[i] {
		return fmt.Errorf("%s: allow=%v, the scenario expects %v", t.name, allow, t.want[i])
	}
	return nil
}

func (t *httpTarget) decide(ctx context.Context, body []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	}
	var r reply
	if err := json.Unmarshal(data, &r); err != nil {
		return false, fmt.Errorf("reply %q: %w", data, err)
	}
	allow := t.decision(r)
	if allow == nil {
		return false, fmt.Errorf("reply %q has no decision", data)
	}
	return *allow, nil
}

// authzenEvaluation is the AuthZEN evaluation of a scenario request: the
// principal as subject, the intent's action as the action with its
// purpose, task id and tool as properties, the context as the context.
// Only what the scenarios send is mapped; anything else is an error.
func authzenEvaluation(r *pdpv1.AuthorizeRequest) (map[string]any, error) {
	in := r.GetIntent()
	if len(r.GetEntities()) > 0 || r.GetPrincipalToken() != "" || len(in.GetAttributes()) > 0 || in.GetActionType() != "" {
		return nil, fmt.Errorf("request entities, tokens, intent attributes and action types have no AuthZEN mapping here")
	}
	props := map[string]any{}
	for k, v := range map[string]string{"purpose": in.GetPurpose(), "task_id": in.GetTaskId(), "tool": in.GetTool()} {
		if v != "" {
			props[k] = v
		}
	}
	action := map[string]any{"name": in.GetAction()}
	if len(props) > 0 {
		action["properties"] = props
	}
	ctx := map[string]any{}
	for k, v := range r.GetContext().GetFields() {
		switch v := v.GetKind().(type) {
		case *pdpv1.Value_BoolValue:
			ctx[k] = v.BoolValue
		case *pdpv1.Value_LongValue:
			ctx[k] = v.LongValue
		case *pdpv1.Value_StringValue:
			ctx[k] = v.StringValue
		default:
			return nil, fmt.Errorf("context.%s: only booleans, longs and strings are mapped, not %T", k, v)
		}
	}
	entity := func(e *pdpv1.EntityRef) map[string]any { return map[string]any{"type": e.GetType(), "id": e.GetId()} }
	return map[string]any{
		"subject":  entity(r.GetPrincipal()),
		"action":   action,
		"resource": entity(r.GetResource()),
		"context":  ctx,
	}, nil
}

// writeOPA writes the scenario's Rego policy and data document to dir,
// for `opa run --server dir/policy.rego dir/data.json`.
func writeOPA(dir string, sc *scenario.Scenario) error {
	data, err := sc.OPAData()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), sc.Rego(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "data.json"), data, 0o644)
}

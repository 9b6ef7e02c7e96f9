package mcpgw

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/yosida95/uritemplate/v3"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// FuzzInput feeds arbitrary bytes as a call's arguments: the conversion
// never panics, and anything it refuses is refused as invalid input (never
// an internal error, which would hide an attacker's probe in the logs).
func FuzzInput(f *testing.F) {
	for _, seed := range []string{`{}`, `null`, `{"a":1}`, `{"a":1.25}`, `{"a":1e400}`, `{"a":[1,{"b":0.00001}]}`, `{"__extn":{"fn":"ip","arg":"1.2.3.4"}}`, `[1]`, `{"a":null}`, `{"a":`} {
		f.Add([]byte(seed))
	}
	limits := engine.Limits{MaxMessageBytes: 1 << 16, MaxDepth: 8, MaxValues: 500}
	g := &Gateway{conv: cedarvalue.New(limits), limits: limits}
	f.Fuzz(func(t *testing.T, args []byte) {
		in, err := g.input(json.RawMessage(args))
		if err != nil {
			if !errors.Is(err, policystore.ErrInvalidRequest) {
				t.Fatalf("%q: refused with %v, not as invalid input", args, err)
			}
			return
		}
		if in == nil {
			t.Fatalf("%q: no error and no input", args)
		}
	})
}

// FuzzMalformed feeds arbitrary bytes as an HTTP request body: what
// malformed lets through is one JSON object whose "jsonrpc" is "2.0".
func FuzzMalformed(f *testing.F) {
	for _, seed := range []string{`garbage`, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, `{"jsonrpc":"1.0"}`, ` [{"jsonrpc":"2.0"}]`, `null`, `"2.0"`, `{"jsonrpc":"2.0"} x`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, why := malformed(body)
		if (why == "") != (code == 0) {
			t.Fatalf("%q: code %d with %q", body, code, why)
		}
		if why != "" {
			return
		}
		var msg map[string]any
		if err := json.Unmarshal(body, &msg); err != nil || msg["jsonrpc"] != "2.0" {
			t.Fatalf("%q let through: %v %v", body, msg, err)
		}
	})
}

// FuzzResourceURI feeds arbitrary URIs to a resources/read's routing and
// template matching: a URI is routed to one upstream, not found, or
// refused as invalid input, never a panic or an internal error.
func FuzzResourceURI(f *testing.F) {
	for _, seed := range []string{"docs://repos/acme/pdp", "docs://repos/a%2Fb/c", "docs://public/readme", "vault://repos//", "", "docs://repos/" + strings.Repeat("x", 100)} {
		f.Add(seed)
	}
	limits := engine.Limits{MaxMessageBytes: 1 << 16, MaxDepth: 8, MaxValues: 500}
	g := &Gateway{conv: cedarvalue.New(limits), limits: limits, resources: resourceRoutes{exact: map[string][]*Upstream{}}}
	docs, vault := &Upstream{cfg: UpstreamConfig{Name: "docs"}}, &Upstream{cfg: UpstreamConfig{Name: "vault"}}
	g.resources.exact["docs://public/readme"] = []*Upstream{docs}
	for _, rt := range []struct {
		tmpl string
		up   *Upstream
	}{{"docs://repos/{owner}/{repo}", docs}, {"vault://{+path}", vault}, {"docs://files{/path*}", docs}, {"any://{x}", docs}, {"any://{y}", vault}} {
		g.resources.templates = append(g.resources.templates, resourceTemplate{template: uritemplate.MustNew(rt.tmpl), upstream: rt.up})
	}
	f.Fuzz(func(t *testing.T, uri string) {
		up, tmpl, err := g.resources.route(uri)
		var notFound *jsonrpc.Error
		switch {
		case errors.As(err, &notFound):
			return
		case err != nil:
			if !errors.Is(err, policystore.ErrInvalidRequest) {
				t.Fatalf("%q: refused with %v, not as invalid input", uri, err)
			}
			return
		case up == nil:
			t.Fatalf("%q: no upstream and no error", uri)
		}
		if _, err := g.templateInput(tmpl, uri); err != nil && !errors.Is(err, policystore.ErrInvalidRequest) {
			t.Fatalf("%q: input refused with %v, not as invalid input", uri, err)
		}
	})
}

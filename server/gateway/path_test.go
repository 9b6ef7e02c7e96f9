package gateway

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// exampleChecker decides with the example bundle and gateway mapping.
func exampleChecker(t *testing.T) *Checker {
	t.Helper()
	store := policystore.NewStore()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig("../../examples/gateway/agents.json")
	if err != nil {
		t.Fatal(err)
	}
	svc := engine.New(store, engine.WithClock(func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }))
	c, err := NewChecker(svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hostilePaths are request targets that some proxy or backend serves as
// another path than their segments name, most of them as
// /repos/payments-api/contents/secrets.env.
var hostilePaths = []string{
	"/repos/payments-api/contents/x/%2e%2e/secrets.env",
	"/repos/payments-api/contents/x/%2E%2E/secrets.env",
	"/repos/payments-api/contents/x/.%2e/secrets.env",
	"/repos/payments-api/contents/x/%2e./secrets.env",
	"/repos/payments-api/contents/x/../secrets.env",
	"/repos/payments-api/contents/x%2F..%2Fsecrets.env",
	"/repos/payments-api/contents/x%2f..%2fsecrets.env",
	"/repos/payments-api%2Fcontents%2Fsecrets.env/issues",
	"/repos/payments-api/contents//secrets.env",
	"//repos/payments-api/contents/secrets.env",
	"/repos/payments-api/contents/secrets.env/",
	"/repos/payments-api/issues/",
	"/repos/payments-api/contents/secrets.env#/README.md",
	"/repos/payments-api/contents/secrets.env%23.md",
	"/repos/payments-api/contents/x/%252e%252e/secrets.env",
	"/repos/payments-api/contents/x%252F..%252Fsecrets.env",
	"/repos/payments-api/contents/secrets.env%00.md",
	"/repos/payments-api/contents/x/\\..\\secrets.env",
	"/repos/payments-api/contents/x%5C..%5Csecrets.env",
	"/repos/payments-api/contents/./secrets.env",
	"/repos/payments-api/contents/x/%2e/secrets.env",
	"/repos/payments-api/contents/x/%c0%ae%c0%ae/secrets.env",
	"/repos/payments-api/contents/x%c0%afsecrets.env",
	"/repos/payments-api/contents/%ff.env",
	"/repos/payments-api/contents/secrets.env;.md",
	"/repos/payments-api/contents/x/..;/secrets.env",
	"/repos/payments-api/contents/secrets.env%3B.md",
	"/repos/payments-api/contents/secrets.env%3F.md",
	"/repos/payments-api/contents/secrets.env%0a",
	"/repos/payments-api/contents/secrets.env%7f",
	"/repos/payments-api/contents/secrets.env%c2%85",
	"/repos/payments-api/contents/%zz",
	"/repos/payments-api/contents/secrets.env%",
	"/repos/payments-api/contents/..",
	"http://api.example.org/repos/payments-api/contents/README.md",
	"repos/payments-api/contents/README.md",
	"/repos/payments-api/contents/x/%2e%2e/secrets.env?plain=1",
}

// TestCheckRefusesNonCanonicalPaths: every hostile path is refused with
// 400 NON_CANONICAL_PATH before any route or policy is consulted, by an
// agent that may read the repository.
func TestCheckRefusesNonCanonicalPaths(t *testing.T) {
	t.Parallel()
	c := exampleChecker(t)
	for _, p := range hostilePaths {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			a := c.Check(context.Background(), Request{Method: "GET", Path: p, Header: http.Header{"X-Agent-Id": {"code-reviewer"}}})
			if a.Allow || a.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("allow %v, HTTP %d (%s); want a 400 denial", a.Allow, a.HTTPStatus, message(a))
			}
			if got := reason(a); got != engine.ReasonNonCanonicalPath {
				t.Errorf("reason %q, want %s", got, engine.ReasonNonCanonicalPath)
			}
		})
	}
	// The same agent, canonical paths: still decided.
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/repos/payments-api/contents/README.md", http.StatusOK},
		{"/repos/payments-api/contents/%52EADME.md", http.StatusOK},
		{"/repos/payments-api/contents/README.md?ref=../../secrets.env", http.StatusOK},
		{"/repos/payments-api/contents/secrets.env", http.StatusForbidden},
	} {
		a := c.Check(context.Background(), Request{Method: "GET", Path: tt.path, Header: http.Header{"X-Agent-Id": {"code-reviewer"}}})
		if a.HTTPStatus != tt.want {
			t.Errorf("%s: HTTP %d (%s), want %d", tt.path, a.HTTPStatus, message(a), tt.want)
		}
	}
}

// TestCheckRefusesMethodOverride: a header asking the backend to act as
// another method is refused, whatever the method decided would be.
func TestCheckRefusesMethodOverride(t *testing.T) {
	t.Parallel()
	c := exampleChecker(t)
	for _, h := range []string{"X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method"} {
		hdr := http.Header{"X-Agent-Id": {"code-reviewer"}}
		hdr.Set(h, "DELETE")
		a := c.Check(context.Background(), Request{Method: "GET", Path: "/repos/payments-api/contents/README.md", Header: hdr})
		if a.Allow || a.HTTPStatus != http.StatusBadRequest || reason(a) != engine.ReasonConflictingHeaders {
			t.Errorf("%s: allow %v, HTTP %d, reason %q; want 400 %s", h, a.Allow, a.HTTPStatus, reason(a), engine.ReasonConflictingHeaders)
		}
	}
}

func reason(a Answer) string {
	if a.Failure == nil {
		return ""
	}
	return a.Failure.Reason
}

func message(a Answer) string {
	if a.Failure == nil {
		return ""
	}
	return a.Failure.Message
}

func TestCanonicalPath(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, canonical string
		segments      []string
	}{
		{"/", "/", []string{""}},
		{"/repos/payments-api/issues", "/repos/payments-api/issues", []string{"repos", "payments-api", "issues"}},
		{"/docs/a%20b.md", "/docs/a%20b.md", []string{"docs", "a b.md"}},
		{"/%70ayments/%7e(x)", "/payments/~(x)", []string{"payments", "~(x)"}},
		{"/caf%c3%a9/é", "/caf%C3%A9/%C3%A9", []string{"café", "é"}},
		{"/a:b@c/!$&'()*+,=", "/a:b@c/!$&'()*+,=", []string{"a:b@c", "!$&'()*+,="}},
		{"/.well-known/..x/x..", "/.well-known/..x/x..", []string{".well-known", "..x", "x.."}},
	} {
		segs, canonical, err := canonicalPath(tt.in)
		if err != nil || canonical != tt.canonical || !slices.Equal(segs, tt.segments) {
			t.Errorf("canonicalPath(%q) = %q, %q, %v; want %q, %q", tt.in, segs, canonical, err, tt.segments, tt.canonical)
		}
	}
}

// FuzzCanonicalPath: canonicalPath never panics, and a path it accepts has
// a canonical form that is its own canonical form, names the same
// segments, and has no segment that path cleaning or a second decoding
// would change.
func FuzzCanonicalPath(f *testing.F) {
	for _, p := range hostilePaths {
		f.Add(p)
	}
	for _, p := range []string{"/", "/repos/r/contents/a%20b.md", "/%c3%a9", "/a/%41", "/a%2520b"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		segs, canonical, err := canonicalPath(path)
		if err != nil {
			return
		}
		again, canonical2, err := canonicalPath(canonical)
		if err != nil || canonical2 != canonical || !slices.Equal(again, segs) {
			t.Fatalf("%q: canonical %q re-canonicalises to %q, %q, %v (segments %q)", path, canonical, canonical2, again, err, segs)
		}
		if canonical == "/" {
			return
		}
		for i, seg := range segs {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "/\\%;#?\x00") || !utf8.ValidString(seg) {
				t.Fatalf("%q accepted with segment %q", path, seg)
			}
			// The canonical form is what a standard decoder reads back.
			raw := strings.Split(canonical[1:], "/")[i]
			if dec, err := url.PathUnescape(raw); err != nil || dec != seg {
				t.Fatalf("%q: canonical segment %q decodes to %q, %v; want %q", path, raw, dec, err, seg)
			}
		}
	})
}

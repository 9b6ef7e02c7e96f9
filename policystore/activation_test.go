package policystore_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
)

// revisionBundle returns a one-policy bundle whose decision for revisionRequest is
// allow or deny, with a matching revision.
func revisionBundle(allow bool, sequence string) *policystore.Bundle {
	effect, rev := "forbid", "deny-rev"
	if allow {
		effect, rev = "permit", "allow-rev"
	}
	return &policystore.Bundle{Source: "test:" + rev, Files: map[string][]byte{
		"manifest.json": []byte(`{"revision":"` + rev + `"` + sequence + `}`),
		"policy.cedar":  []byte(`@id("p") ` + effect + ` (principal, action, resource);`),
	}}
}

func revisionRequest(t testing.TB) policystore.Request {
	t.Helper()
	return policystore.Request{
		Principal: types.NewEntityUID("Agent", "a"),
		Action:    types.NewEntityUID("Action", "read"),
		Resource:  types.NewEntityUID("Doc", "d"),
		Now:       time.Unix(0, 0),
	}
}

func embeddedExample(t *testing.T) *policystore.Bundle {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	b.Source = "embedded"
	return b
}

func mustActivate(t *testing.T, s *policystore.Store, b *policystore.Bundle) *policystore.Snapshot {
	t.Helper()
	snap, err := s.Activate(context.Background(), b)
	if err != nil {
		t.Fatalf("activate %s: %v", b.Source, err)
	}
	return snap
}

func TestActivateRunsBundleCases(t *testing.T) {
	t.Parallel()
	s := policystore.NewStore()
	b := embeddedExample(t)
	if _, ok := b.Files["tests/cases.json"]; !ok {
		t.Fatal("example bundle has no tests/cases.json")
	}
	mustActivate(t, s, b)

	// Flip one expectation: the same bundle must now be refused.
	broken := embeddedExample(t)
	broken.Files["tests/cases.json"] = []byte(strings.Replace(string(broken.Files["tests/cases.json"]),
		`"decision": "allow", "reasons": ["platform-reads-payments"]`, `"decision": "deny"`, 1))
	_, err := s.Activate(context.Background(), broken)
	var verr *policystore.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), `tests/cases.json: case "platform agent reads the payments README": expected deny, got allow`) {
		t.Fatalf("failing case: got %v", err)
	}
}

func TestActivateRefusesBrokenBundles(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		files map[string]string
		want  string
	}{
		"parse error": {
			files: map[string]string{"policy.cedar": "permit (principal, action, resource)\n;\nforbid (principal,"},
			want:  "policy.cedar:3:19",
		},
		"duplicate id": {
			files: map[string]string{"a.cedar": `@id("x") permit (principal, action, resource);`, "b.cedar": `@id("x") forbid (principal, action, resource);`},
			want:  `b.cedar:1:1: duplicate policy id "x"`,
		},
		"schema violation": {
			files: map[string]string{
				"s.cedarschema": "entity Agent; action read appliesTo { principal: [Agent], resource: [Agent] };",
				"p.cedar":       "permit (principal, action == Action::\"read\", resource) when { principal.missing };",
			},
			want: "does not validate",
		},
		"unreadable case file": {
			files: map[string]string{"p.cedar": "permit (principal, action, resource);", "tests/x.json": `[{"name": "n", "expect": {"decision": "maybe"}}]`},
			want:  `tests/x.json: case "n": expect.decision must be`,
		},
		"bad manifest": {
			files: map[string]string{"manifest.json": `{"sequence": "one"}`},
			want:  "manifest.json",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := policystore.NewStore()
			good := mustActivate(t, s, revisionBundle(true, ""))
			b := &policystore.Bundle{Source: name, Files: map[string][]byte{}}
			for p, c := range tc.files {
				b.Files[p] = []byte(c)
			}
			snap, err := s.Activate(context.Background(), b)
			if err == nil || snap != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got (%v, %v), want an error containing %q", snap, err, tc.want)
			}
			cur, _ := s.Current()
			if cur != good {
				t.Fatalf("active snapshot changed to %s", cur.Revision())
			}
			st := s.Status()
			if st.Active != good || st.LastAttempt == nil || st.LastAttempt.Err == nil || st.LastAttempt.Source != name {
				t.Fatalf("status does not show the failure: %+v", st.LastAttempt)
			}
		})
	}
}

func TestActivateObserverAndStatus(t *testing.T) {
	t.Parallel()
	var seen []policystore.ActivationResult
	clock := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := policystore.NewStore(
		policystore.WithClock(func() time.Time { return clock }),
		policystore.WithActivationObserver(func(r policystore.ActivationResult) { seen = append(seen, r) }))
	snap := mustActivate(t, s, revisionBundle(true, `,"sequence":3`))
	if _, err := s.Activate(context.Background(), &policystore.Bundle{Source: "bad", Files: map[string][]byte{"p.cedar": []byte("nope")}}); err == nil {
		t.Fatal("bad bundle activated")
	}
	if len(seen) != 2 || seen[0].Err != nil || seen[0].Snapshot != snap || seen[0].Revision != "allow-rev" || seen[0].Sequence != 3 || seen[1].Err == nil || seen[1].Snapshot != nil {
		t.Fatalf("observer saw %+v", seen)
	}
	st := s.Status()
	if st.Active.Revision() != "allow-rev" || !st.Active.ActivatedAt().Equal(clock) || st.Active.Sequence() != 3 || st.LastAttempt.Source != "bad" {
		t.Fatalf("status %+v", st)
	}
}

func TestActivateAntiRollback(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{false, true} {
		s := policystore.NewStore(policystore.WithAllowRollback(allow))
		mustActivate(t, s, revisionBundle(true, `,"sequence":5`))
		mustActivate(t, s, revisionBundle(true, `,"sequence":5`)) // same sequence: a re-activation
		_, err := s.Activate(context.Background(), revisionBundle(false, `,"sequence":4`))
		if allow != (err == nil) || (!allow && !errors.Is(err, policystore.ErrRollback)) {
			t.Fatalf("allow rollback %v: got %v", allow, err)
		}
	}
}

func TestActivateVerifiesSignatures(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	signed := func(key ed25519.PrivateKey) *policystore.Bundle {
		b := embeddedExample(t)
		if err := policystore.Seal(b, 7, key); err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string]struct {
		bundle func() *policystore.Bundle
		want   string // "" means it activates
	}{
		"signed":   {bundle: func() *policystore.Bundle { return signed(priv) }},
		"unsigned": {bundle: func() *policystore.Bundle { return embeddedExample(t) }, want: "not signed"},
		"wrong key": {bundle: func() *policystore.Bundle { return signed(otherPriv) },
			want: "no signature verifies"},
		"tampered file": {bundle: func() *policystore.Bundle {
			b := signed(priv)
			b.Files["policies.cedar"] = append(b.Files["policies.cedar"], "\npermit (principal, action, resource);"...)
			return b
		}, want: "policies.cedar: digest does not match"},
		"added file": {bundle: func() *policystore.Bundle {
			b := signed(priv)
			b.Files["extra.cedar"] = []byte("permit (principal, action, resource);")
			return b
		}, want: "extra.cedar: not listed"},
		"removed file": {bundle: func() *policystore.Bundle {
			b := signed(priv)
			delete(b.Files, "tests/cases.json")
			return b
		}, want: "tests/cases.json: listed in the manifest but missing"},
		"tampered manifest": {bundle: func() *policystore.Bundle {
			b := signed(priv)
			b.Files["manifest.json"] = []byte(strings.Replace(string(b.Files["manifest.json"]), `"sequence": 7`, `"sequence": 8`, 1))
			return b
		}, want: "no signature verifies"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := policystore.NewStore(policystore.WithVerificationKeys(pub))
			snap, err := s.Activate(context.Background(), tc.bundle())
			if tc.want == "" {
				if err != nil || snap.Sequence() != 7 || snap.Revision() != "agents-example-v1" {
					t.Fatalf("got (%v, %v)", snap, err)
				}
				return
			}
			if !errors.Is(err, policystore.ErrBadSignature) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrBadSignature containing %q", err, tc.want)
			}
		})
	}
}

// TestConcurrentDecisionsMatchRevision starts readers behind a gate while a
// writer alternates two bundles whose decisions differ: every decision must
// be the one its reported revision makes.
func TestConcurrentDecisionsMatchRevision(t *testing.T) {
	t.Parallel()
	s := policystore.NewStore()
	bundles := []*policystore.Bundle{revisionBundle(true, ""), revisionBundle(false, "")}
	mustActivate(t, s, bundles[0])
	req := revisionRequest(t)

	start := make(chan struct{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	mismatches := make([]int, 4)
	decisions := make([]int, 4)
	for r := range 4 {
		wg.Go(func() {
			<-start
			for {
				select {
				case <-done:
					return
				default:
				}
				snap, err := s.Current()
				if err != nil {
					mismatches[r]++
					continue
				}
				d, err := snap.Decide(context.Background(), req)
				decisions[r]++
				if err != nil || d.Allow != (d.Revision == "allow-rev") {
					mismatches[r]++
				}
			}
		})
	}
	close(start)
	for i := range 200 {
		mustActivate(t, s, bundles[(i+1)%2])
	}
	close(done)
	wg.Wait()
	for r := range 4 {
		if mismatches[r] != 0 {
			t.Errorf("reader %d: %d mismatches in %d decisions", r, mismatches[r], decisions[r])
		}
	}
}

func TestReusedRevisionStaysUnique(t *testing.T) {
	t.Parallel()
	s := policystore.NewStore()
	allow := revisionBundle(true, "")
	first := mustActivate(t, s, allow)
	// Same manifest revision, different content: the revision must differ.
	deny := revisionBundle(false, "")
	deny.Files["manifest.json"] = allow.Files["manifest.json"]
	edited := mustActivate(t, s, deny)
	if edited.Revision() == first.Revision() || !strings.HasPrefix(edited.Revision(), first.Revision()+"+sha256:") {
		t.Fatalf("edited content kept revision %q", edited.Revision())
	}
	if again := mustActivate(t, s, deny); again.Revision() != edited.Revision() {
		t.Fatalf("same content, new revision: %q then %q", edited.Revision(), again.Revision())
	}
	back := mustActivate(t, s, allow)
	if back.Revision() == edited.Revision() {
		t.Fatalf("reverted content reports %q", back.Revision())
	}
	d, err := back.Decide(context.Background(), revisionRequest(t))
	if err != nil || !d.Allow || d.Revision != back.Revision() {
		t.Fatalf("decision %+v %v", d, err)
	}
}

// TestRevisionNamesOneContentAcrossHistory: a revision that went live once
// keeps naming that content, even after another revision was in between.
func TestRevisionNamesOneContentAcrossHistory(t *testing.T) {
	t.Parallel()
	s := policystore.NewStore()
	allow := revisionBundle(true, "")
	first := mustActivate(t, s, allow)
	mustActivate(t, s, revisionBundle(false, ""))
	deny := revisionBundle(false, "")
	deny.Files["manifest.json"] = allow.Files["manifest.json"]
	if later := mustActivate(t, s, deny); later.Revision() == first.Revision() {
		t.Fatalf("two contents both report revision %q", first.Revision())
	}
}

// TestActivateAfterCancellation: a caller that gave up before activation
// started gets nothing, and the same bundle activates on the next call.
func TestActivateAfterCancellation(t *testing.T) {
	t.Parallel()
	s := policystore.NewStore()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Activate(ctx, revisionBundle(true, "")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled activation: err = %v", err)
	}
	if snap := mustActivate(t, s, revisionBundle(true, "")); snap.Revision() != "allow-rev" {
		t.Fatalf("revision %q", snap.Revision())
	}
}

func TestParseCasesRequiresFields(t *testing.T) {
	t.Parallel()
	full := `{"name": "n", "principal": {"type": "A", "id": "a"}, "action": {"type": "Action", "id": "r"},
		"resource": {"type": "D", "id": "d"}, "now": "2026-11-23T00:00:00Z", "expect": {"decision": "deny"}}`
	if _, err := policystore.ParseCases([]byte("[" + full + "]")); err != nil {
		t.Fatalf("complete case refused: %v", err)
	}
	cases := map[string]string{
		"no name":      strings.Replace(full, `"name": "n"`, `"name": ""`, 1),
		"no principal": strings.Replace(full, `"principal": {"type": "A", "id": "a"},`, ``, 1),
		"no now":       strings.Replace(full, `"now": "2026-11-23T00:00:00Z",`, ``, 1),
		"bad decision": strings.Replace(full, `"deny"`, `"DENY"`, 1),
		"unknown key":  strings.Replace(full, `"name"`, `"nmae": "x", "name"`, 1),
		"not an array": full,
	}
	for name, c := range cases {
		if name != "not an array" {
			c = "[" + c + "]"
		}
		if _, err := policystore.ParseCases([]byte(c)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestActivateChecksListedDigestsUnsigned: a directory caught half-way
// through an update, the new manifest beside the old policies, is refused
// when the manifest lists the files' digests, even with no verification key.
func TestActivateChecksListedDigestsUnsigned(t *testing.T) {
	t.Parallel()
	oldBundle, newBundle := revisionBundle(true, ""), revisionBundle(false, "")
	for _, b := range []*policystore.Bundle{oldBundle, newBundle} {
		if err := policystore.Seal(b, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := policystore.NewStore()
	mustActivate(t, s, oldBundle)
	halfWritten := &policystore.Bundle{Source: "half-written", Files: map[string][]byte{
		"manifest.json": newBundle.Files["manifest.json"],
		"policy.cedar":  oldBundle.Files["policy.cedar"],
	}}
	_, err := s.Activate(context.Background(), halfWritten)
	if err == nil || !strings.Contains(err.Error(), "policy.cedar: digest does not match the manifest") {
		t.Fatalf("half-written bundle: %v", err)
	}
	if snap, _ := s.Current(); snap.Revision() != "allow-rev" {
		t.Fatalf("serving %s after a refused bundle", snap.Revision())
	}
	mustActivate(t, s, newBundle)
}

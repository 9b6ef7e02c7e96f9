package policystore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// randomToolPolicies writes n policies over two agents and three tools,
// some of whose conditions read context.input.amount (the arguments) and
// some of which do not. usesInput reports whether any does.
func randomToolPolicies(r *rand.Rand, n int) (text string, usesInput bool) {
	principals := []string{`principal`, `principal == Agent::"a"`, `principal == Agent::"b"`}
	actions := []string{`action`, `action == Action::"t0"`, `action == Action::"t1"`, `action in [Action::"t1", Action::"t2"]`}
	conds := []string{
		"", "",
		`when { context.input.amount < %d }`,
		`when { context.input.amount == %d }`,
		`unless { context.input.amount > %d }`,
		`when { context.input has amount }`,
		`when { context.intent.purpose == "triage" }`,
		`unless { context.intent.purpose == "triage" }`,
		`when { false }`,
	}
	var b strings.Builder
	for i := range n {
		effect := "permit"
		if r.IntN(3) == 0 {
			effect = "forbid"
		}
		cond := conds[r.IntN(len(conds))]
		if strings.Contains(cond, "%d") {
			cond = fmt.Sprintf(cond, r.IntN(5))
		}
		usesInput = usesInput || strings.Contains(cond, "input")
		fmt.Fprintf(&b, "@id(\"p%d\")\n%s (%s, %s, resource) %s;\n", i, effect, principals[r.IntN(len(principals))], actions[r.IntN(len(actions))], cond)
	}
	return b.String(), usesInput
}

// TestCouldAllowIsSound decides generated policy sets on every argument
// value in a range and checks CouldAllow against them: a tool some call of
// which is allowed could be allowed (listed); and when no policy reads the
// arguments, CouldAllow is exact (a tool every call of which is denied is
// not listed).
func TestCouldAllowIsSound(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 13))
	inputs := []types.RecordMap{{}}
	for amount := -1; amount <= 6; amount++ {
		inputs = append(inputs, types.RecordMap{"amount": types.Long(amount)}, types.RecordMap{"amount": types.String("x")})
	}
	var exact, sound int
	for set := range 300 {
		text, usesInput := randomToolPolicies(r, 1+r.IntN(6))
		b, err := LoadFS(fstest.MapFS{"p.cedar": {Data: []byte(text)}})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := Compile(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, principal := range []string{"a", "b"} {
			for _, tool := range []string{"t0", "t1", "t2"} {
				for _, purpose := range []string{"", "triage"} {
					req := Request{
						Principal: types.NewEntityUID("Agent", types.String(principal)),
						Action:    types.NewEntityUID("Action", types.String(tool)),
						Resource:  types.NewEntityUID("MCPServer", "s"),
						Intent:    Intent{Purpose: purpose, Tool: tool},
						Now:       time.Unix(0, 0),
					}
					could, err := snap.CouldAllow(context.Background(), req, "input")
					if err != nil {
						t.Fatal(err)
					}
					someAllowed := false
					for _, in := range inputs {
						req.Context = types.RecordMap{"input": types.NewRecord(in)}
						d, err := snap.Decide(context.Background(), req)
						if err != nil {
							t.Fatal(err)
						}
						someAllowed = someAllowed || d.Allow
					}
					if someAllowed && !could {
						t.Fatalf("set %d, %s %s purpose %q: a call is allowed but CouldAllow is false\n%s", set, principal, tool, purpose, text)
					}
					if !usesInput {
						exact++
						if could != someAllowed {
							t.Fatalf("set %d, %s %s purpose %q: no policy reads the arguments, yet CouldAllow=%v while decisions allow=%v\n%s", set, principal, tool, purpose, could, someAllowed, text)
						}
					} else {
						sound++
					}
				}
			}
		}
	}
	if exact == 0 || sound == 0 {
		t.Fatalf("generated sets cover exact=%d sound=%d cases; want both", exact, sound)
	}
	t.Logf("%d cases checked exact, %d sound", exact, sound)
}

package policystore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
)

// requestGraphs are request-entity shapes of n entities G::"0" … G::"n-1",
// G::"0" the principal: a chain (each the parent of the one before), a
// binary tree read from a leaf, and a wide graph (every entity in two of ten
// groups, the groups under one root). The policy lets members of G::"top"
// in; the top of every graph is in it.
var requestGraphs = []struct {
	name   string
	parent func(i, n int) []int // -1 is G::"top"
}{
	{"chain", func(i, n int) []int {
		if i+1 < n {
			return []int{i + 1}
		}
		return []int{-1}
	}},
	{"tree", func(i, n int) []int {
		// Entity i's parent is (n-1-((n-1-i)-1)/2): the root is n-1.
		if j := n - 1 - i; j > 0 {
			return []int{n - 1 - (j-1)/2}
		}
		return []int{-1}
	}},
	{"wide", func(i, n int) []int {
		switch {
		case i == n-1:
			return []int{-1}
		case i >= n-11:
			return []int{n - 1}
		default:
			return []int{n - 11 + i%10, n - 11 + (i+3)%10}
		}
	}},
}

func requestGraph(n int, parent func(i, n int) []int) types.EntityMap {
	m := make(types.EntityMap, n)
	for i := range n {
		e := types.Entity{UID: uid("G", fmt.Sprint(i))}
		var ps []types.EntityUID
		for _, p := range parent(i, n) {
			if p < 0 {
				ps = append(ps, uid("G", "top"))
			} else {
				ps = append(ps, uid("G", fmt.Sprint(p)))
			}
		}
		e.Parents = types.NewEntityUIDSet(ps...)
		m[e.UID] = e
	}
	return m
}

// BenchmarkRequestEntities measures Decide on requests carrying n request
// entities, and reports the cost per entity. Chains deeper than
// MaxRequestEntityDepth are refused; their time is the cost of refusing.
func BenchmarkRequestEntities(b *testing.B) {
	snap, err := policystore.Compile(bundle(map[string]string{
		"p.cedar": `permit (principal in G::"top", action, resource);`,
	}))
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range requestGraphs {
		for _, n := range []int{10, 64, 100, 1000} {
			b.Run(fmt.Sprintf("%s-%d", g.name, n), func(b *testing.B) {
				ents := requestGraph(n, g.parent)
				req := policystore.Request{Principal: uid("G", "0"), Action: uid("Action", "a"), Resource: uid("R", "r"), Entities: ents}
				refused := g.name == "chain" && n > policystore.MaxRequestEntityDepth
				d, err := snap.Decide(context.Background(), req)
				switch {
				case refused && !errors.Is(err, policystore.ErrInvalidRequest):
					b.Fatalf("deep chain: err = %v, want refused", err)
				case !refused && (err != nil || !d.Allow):
					b.Fatalf("decide: allow %v, err %v", d.Allow, err)
				}
				b.ReportAllocs()
				for b.Loop() {
					_, _ = snap.Decide(context.Background(), req)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entity")
			})
		}
	}
}

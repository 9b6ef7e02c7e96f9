package engine

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestDecisionIDsAreUUIDv7UniqueAndOrdered(t *testing.T) {
	s := newIDSource()
	now := time.UnixMilli(1_800_000_000_123)
	var ids []string
	for i := range 5000 {
		at := now
		if i >= 2500 {
			at = now.Add(time.Millisecond)
		}
		ids = append(ids, s.next(at))
	}
	for _, id := range ids[:3] {
		u, err := uuid.Parse(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Errorf("%s: version %d variant %v, want 7 and RFC 4122", id, u.Version(), u.Variant())
		}
		sec, nsec := u.Time().UnixTime()
		if got := time.Unix(sec, nsec).UnixMilli(); got != now.UnixMilli() {
			t.Errorf("%s: time %d ms, want %d", id, got, now.UnixMilli())
		}
	}
	// The sequence starts at random, so it may wrap once within the run;
	// ids are ordered everywhere else.
	wraps := 0
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			wraps++
		}
	}
	if wraps > 1 {
		t.Errorf("%d ids out of order, want at most one wrap of the sequence", wraps)
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(ids) {
		t.Error("duplicate decision ids")
	}
	if other := newIDSource(); other.tag == s.tag && other.seq.Load() == s.seq.Load() {
		t.Error("two id sources start in the same state")
	}
}

func TestDecisionIDAllocatesOnlyItsString(t *testing.T) {
	s := newIDSource()
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { _ = s.next(now) }); n > 1 {
		t.Errorf("%v allocations per id, want 1 (the string)", n)
	}
}

func BenchmarkDecisionID(b *testing.B) {
	s := newIDSource()
	b.ReportAllocs()
	for b.Loop() {
		_ = s.next(time.Now())
	}
}

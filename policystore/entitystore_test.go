package policystore

import (
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/internal/testutil/cedarcorpus"
)

// TestEntityStoreReturnsEntitiesAsWritten: every entity read back from the
// store, attributes and tags decoded from their stored form, equals the
// entity given, for the entities of the Cedar corpus and of generated
// graphs; UIDs the store only knows as parents are not entities.
func TestEntityStoreReturnsEntitiesAsWritten(t *testing.T) {
	t.Parallel()
	for name, data := range entityFixtures(t) {
		var m types.EntityMap
		if err := m.UnmarshalJSON(data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkStore(t, name, m)
	}
}

// entityFixtures yields each distinct entity list of the Cedar corpus,
// then those of 16 generated graphs, as Cedar entity JSON.
func entityFixtures(t *testing.T) iter.Seq2[string, []byte] {
	t.Helper()
	tests, err := cedarcorpus.Load()
	if err != nil {
		t.Fatal(err)
	}
	return func(yield func(string, []byte) bool) {
		seen := map[string]bool{}
		for _, ct := range tests {
			if seen[string(ct.Entities)] {
				continue
			}
			seen[string(ct.Entities)] = true
			if !yield(ct.Name, ct.Entities) {
				return
			}
		}
		for seed := range uint64(16) {
			data, err := newGen(seed).entities().MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !yield(fmt.Sprintf("generated %d", seed), data) {
				return
			}
		}
	}
}

func checkStore(t *testing.T, name string, m types.EntityMap) {
	t.Helper()
	s := mustStore(m)
	if s.Len() != len(m) {
		t.Fatalf("%s: %d entities stored, want %d", name, s.Len(), len(m))
	}
	if got, want := slices.SortedFunc(s.All(), CompareUIDs), sortedUIDs(m); !slices.Equal(got, want) {
		t.Fatalf("%s: All = %v, want %v", name, got, want)
	}
	for uid, want := range m {
		got, ok := s.Get(uid)
		if !ok || !got.Equal(want) {
			t.Fatalf("%s: Get(%s) = %v, %v; want %v", name, uid, got, ok, want)
		}
		for p := range want.Parents.All() {
			if _, defined := m[p]; !defined {
				if _, ok := s.Get(p); ok {
					t.Fatalf("%s: parent %s is no entity, yet Get finds it", name, p)
				}
			}
		}
	}
	if _, ok := s.Get(types.NewEntityUID("Nobody", "here")); ok {
		t.Fatalf("%s: Get of an unknown UID succeeded", name)
	}
}

// TestEntityStoreKeepsRecordsWithoutJSONForm: a record with an "__extn"
// key has no JSON form cedar-go reads back; such an entity is kept as is.
// An extension value has no binary form: that entity is stored as JSON.
func TestEntityStoreKeepsRecordsWithoutJSONForm(t *testing.T) {
	t.Parallel()
	ip, err := types.ParseIPAddr("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	ext := types.NewEntityUID("Doc", "ext")
	odd := types.NewEntityUID("Doc", "odd")
	plain := types.NewEntityUID("Doc", "plain")
	folder := types.NewEntityUID("Folder", "f")
	m := types.EntityMap{
		odd: {UID: odd, Parents: types.NewEntityUIDSet(folder),
			Attributes: types.NewRecord(types.RecordMap{"__extn": types.String("x"), "n": types.Long(1)})},
		plain: {UID: plain, Attributes: types.NewRecord(types.RecordMap{"n": types.Long(2)}),
			Tags: types.NewRecord(types.RecordMap{"t": types.True})},
		ext: {UID: ext, Attributes: types.NewRecord(types.RecordMap{"net": ip, "at": types.NewDatetime(time.Unix(1, 0))})},
	}
	checkStore(t, "records without JSON form", m)
	got, _ := closedEntities{mustStore(m)}.Get(odd)
	if !got.Parents.Contains(folder) || got.Attributes.Len() != 2 {
		t.Fatalf("closed view of the kept entity = %v", got)
	}
}

// BenchmarkClosedEntityGet is what Decide pays to read a bundle entity: a
// cached read, and a miss that materialises the entity (two parents and
// an attribute, as a scenario's document).
func BenchmarkClosedEntityGet(b *testing.B) {
	folder, tenant := types.NewEntityUID("Folder", "f"), types.NewEntityUID("Tenant", "t")
	doc := types.NewEntityUID("Doc", "d1")
	s := mustStore(types.EntityMap{
		tenant: {UID: tenant},
		folder: {UID: folder, Parents: types.NewEntityUIDSet(tenant)},
		doc: {UID: doc, Parents: types.NewEntityUIDSet(folder),
			Attributes: types.NewRecord(types.RecordMap{"size": types.Long(12345)})},
	})
	closed := closedEntities{s}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := closed.Get(doc); !ok {
				b.Fatal("not found")
			}
		}
	})
	b.Run("materialised", func(b *testing.B) {
		u, _ := s.entity(doc)
		b.ReportAllocs()
		for b.Loop() {
			s.materialise(u, &s.closure)
		}
	})
}

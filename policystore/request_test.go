package policystore

import (
	"fmt"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// TestCachedIntentRecordsEqualFreshOnes checks that the context Decide
// builds with cached intent records equals CedarContext's, for intents
// with and without attributes, on first use and on reuse, and that the
// cache stays bounded.
func TestCachedIntentRecordsEqualFreshOnes(t *testing.T) {
	var cache intentRecords
	base := Request{
		Principal: types.NewEntityUID("Agent", "a"),
		Context:   types.RecordMap{"risk": types.Long(3)},
		Now:       time.Unix(1_800_000_000, 0),
	}
	intents := []Intent{
		{Purpose: "review", Tool: "editor"},
		{Purpose: "review", Tool: "editor", TaskID: "T-1"},
		{Purpose: "review", Tool: "shell"},
		{},
		{Purpose: "review", Tool: "editor", Attributes: types.RecordMap{"path": types.String("/a")}},
	}
	for round := range 2 {
		for _, in := range intents {
			req := base
			req.Intent = in
			want, err := req.CedarContext()
			if err != nil {
				t.Fatal(err)
			}
			got, err := req.cedarContext(&cache)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Errorf("round %d, intent %+v: cached context %s, want %s", round, in, got, want)
			}
		}
	}
	if n := len(cache.m); n != 4 {
		t.Errorf("%d cached intent records, want 4 (the intent with attributes is not cached)", n)
	}
	for i := range maxIntentRecords + 10 {
		cache.record(Intent{TaskID: fmt.Sprint(i)})
	}
	if n := len(cache.m); n > maxIntentRecords {
		t.Errorf("%d cached intent records, want at most %d", n, maxIntentRecords)
	}
}

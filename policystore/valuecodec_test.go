package policystore

import (
	"math"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// TestValueCodecRoundTrip: every kind of value the binary form covers reads
// back equal, and a record holding an extension value has no binary form.
func TestValueCodecRoundTrip(t *testing.T) {
	t.Parallel()
	values := []types.Value{
		types.String(""), types.String("héllo \x00 \"world\""), types.Long(0), types.Long(-1), types.Long(63),
		types.Long(-64), types.Long(math.MaxInt64), types.Long(math.MinInt64), types.True, types.False,
		types.NewEntityUID("A::B", "x\ny"), types.NewSet(), types.NewSet(types.Long(1), types.String("1"), types.NewSet(types.True)),
		types.NewRecord(nil), types.NewRecord(types.RecordMap{"": types.Long(1), "nested": types.NewRecord(types.RecordMap{"a": types.NewSet()})}),
	}
	for _, v := range values {
		b, ok := appendValue(nil, v)
		if !ok {
			t.Fatalf("%v has no binary form", v)
		}
		r := valueReader{data: string(b)}
		if got := r.value(); !got.Equal(v) || r.at != len(b) {
			t.Fatalf("%v read back as %v (%d of %d bytes)", v, got, r.at, len(b))
		}
	}
	dec, err := types.ParseDecimal("1.5")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := appendValue(nil, types.NewRecord(types.RecordMap{"a": types.NewSet(dec)})); ok {
		t.Fatal("a decimal has a binary form")
	}
}

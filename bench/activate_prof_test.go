package bench

import (
	"testing"

	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
)

func TestTmpActivateProfile(t *testing.T) {
	spec, _ := scenario.Find("p100k-e100k")
	b := scenario.Build(spec).Bundle
	if _, err := policystore.Compile(b); err != nil {
		t.Fatal(err)
	}
}

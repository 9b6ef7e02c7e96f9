package bench

import (
	"testing"

	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
)

func TestTmpActivateProfile(t *testing.T) {
	spec, _ := scenario.Find("p1m-e1m")
	b := scenario.Build(spec).Bundle
	if _, err := policystore.Compile(b); err != nil {
		t.Fatal(err)
	}
}

package mcpgw

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// FuzzInput feeds arbitrary bytes as a call's arguments: the conversion
// never panics, and anything it refuses is refused as invalid input (never
// an internal error, which would hide an attacker's probe in the logs).
func FuzzInput(f *testing.F) {
	for _, seed := range []string{`{}`, `null`, `{"a":1}`, `{"a":1.25}`, `{"a":1e400}`, `{"a":[1,{"b":0.00001}]}`, `{"__extn":{"fn":"ip","arg":"1.2.3.4"}}`, `[1]`, `{"a":null}`, `{"a":`} {
		f.Add([]byte(seed))
	}
	limits := engine.Limits{MaxMessageBytes: 1 << 16, MaxDepth: 8, MaxValues: 500}
	g := &Gateway{conv: cedarvalue.New(limits), limits: limits}
	f.Fuzz(func(t *testing.T, args []byte) {
		in, err := g.input(json.RawMessage(args))
		if err != nil {
			if !errors.Is(err, policystore.ErrInvalidRequest) {
				t.Fatalf("%q: refused with %v, not as invalid input", args, err)
			}
			return
		}
		if in == nil {
			t.Fatalf("%q: no error and no input", args)
		}
	})
}

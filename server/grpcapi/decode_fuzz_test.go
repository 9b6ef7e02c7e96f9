package grpcapi_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// FuzzDecodeRequest feeds arbitrary wire bytes through decoding and the
// decision: it must never panic, and any error must be one the server maps
// to InvalidArgument or ResourceExhausted.
func FuzzDecodeRequest(f *testing.F) {
	for _, r := range []*pdpv1.AuthorizeRequest{
		readRequest(),
		{
			Principal: &pdpv1.EntityRef{Type: "Agent", Id: "deployer"},
			Intent: &pdpv1.Intent{Action: proto.String("deploy_service"), Purpose: "release",
				Attributes: map[string]*pdpv1.Value{"approval_ticket": str("CHG-1")}},
			Resource: &pdpv1.EntityRef{Type: "Environment", Id: "payments-prod"},
			Context: &pdpv1.Record{Fields: map[string]*pdpv1.Value{
				"at":   ext("datetime", "2026-11-23T10:00:00Z"),
				"from": ext("ip", "10.0.0.0/8"),
				"n":    record(map[string]*pdpv1.Value{"x": long(3)}),
			}},
			Entities: []*pdpv1.Entity{{Uid: &pdpv1.EntityRef{Type: "Doc", Id: "d"}, Parents: []*pdpv1.EntityRef{{Type: "Team", Id: "platform"}}}},
		},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	snap, err := exampleStore(f).Current()
	if err != nil {
		f.Fatal(err)
	}
	limits := engine.DefaultLimits
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req pdpv1.AuthorizeRequest
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		preq, err := grpcapi.DecodeRequest(&req, limits)
		if err != nil {
			if !errors.Is(err, policystore.ErrInvalidRequest) && !errors.Is(err, engine.ErrLimitExceeded) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if _, err := snap.Decide(context.Background(), preq); err != nil && !errors.Is(err, policystore.ErrInvalidRequest) {
			t.Fatalf("Decide: %v", err)
		}
	})
}

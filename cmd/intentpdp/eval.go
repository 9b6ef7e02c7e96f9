package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// eval decides one AuthorizeRequest (protojson, as grpcurl sends it)
// offline and prints the response with its reasons.
func eval(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stdout)
	bundleDir := fs.String("bundle", "", "bundle directory (default: the embedded example bundle)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: intentpdp eval --bundle DIR REQUEST.json")
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var req pdpv1.AuthorizeRequest
	if err := protojson.Unmarshal(data, &req); err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	b, err := loadBundle(*bundleDir)
	if err != nil {
		return err
	}
	snap, err := policystore.Compile(b)
	if err != nil {
		return err
	}
	eng := engine.New(engine.Fixed(snap), engine.WithDecisionID(func() string { return "offline" }))
	resp, err := grpcapi.Decide(context.Background(), eng, &req, engine.DefaultLimits)
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(out))
	return nil
}

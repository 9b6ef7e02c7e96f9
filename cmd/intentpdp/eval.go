package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server"
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
	preq, err := server.DecodeRequest(&req, server.DefaultLimits)
	if err != nil {
		return err
	}
	preq.Now = time.Now()
	d, err := snap.Decide(context.Background(), preq)
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true}.Marshal(server.EncodeDecision(d, "offline"))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(out))
	return nil
}

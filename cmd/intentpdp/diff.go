package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

const diffUsage = `usage: intentpdp diff [flags] OLD NEW

Decides the test cases of both bundles (tests/*.json) and the example
requests with each bundle and reports where NEW decides otherwise: the
quick check before a replay. Exits 1 when a --max-* limit is exceeded.`

// diff compares two bundles over their own test cases and example
// requests.
func diff(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	fs.SetOutput(stdout)
	requestsDir := fs.String("requests", "", "directory of example requests (AuthorizeRequest JSON, as grpcurl sends them; default: the embedded examples/agents/requests)")
	var out reportOptions
	out.bindFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New(diffUsage)
	}
	var snaps [2]*policystore.Snapshot
	var bundles [2]*policystore.Bundle
	for i, p := range fs.Args() {
		b, err := readBundle(ctx, p)
		if err != nil {
			return err
		}
		// Each bundle must pass its own activation, tests included.
		if snaps[i], err = activateBundle(ctx, p, b, nil, stdout); err != nil {
			return err
		}
		bundles[i] = b
	}
	named, err := diffRequests(bundles, *requestsDir)
	if err != nil {
		return err
	}
	rep := newReport("diff", snaps[1].Revision(), out.examples)
	for i, nr := range named {
		was, err := snaps[0].Decide(ctx, nr.req)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", fs.Arg(0), nr.name, err)
		}
		d, err := snaps[1].Decide(ctx, nr.req)
		if err != nil {
			rep.Failed++
			continue
		}
		rep.add(i, nr.name, nr.req, was.Allow, was.PolicyIDs(), was.Revision, d)
	}
	rep.finish(0)
	return out.emit(stdout, rep)
}

type namedRequest struct {
	name string
	req  policystore.Request
}

// diffRequests are the test cases of both bundles (a case both carry, by
// name, once) and the example requests, decided at one fixed now.
func diffRequests(bundles [2]*policystore.Bundle, dir string) ([]namedRequest, error) {
	var out []namedRequest
	seen := map[string]bool{}
	for _, b := range bundles {
		for _, file := range slices.Sorted(func(yield func(string) bool) {
			for p := range b.Files {
				if strings.HasPrefix(p, policystore.TestsDir) && strings.HasSuffix(p, ".json") && !yield(p) {
					return
				}
			}
		}) {
			cases, err := policystore.ParseCases(b.Files[file])
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", b.Source, file, err)
			}
			for _, c := range cases {
				name := "case: " + c.Name
				if !seen[name] {
					seen[name] = true
					out = append(out, namedRequest{name, c.Request()})
				}
			}
		}
	}
	var fsys fs.FS = os.DirFS(dir)
	root := "."
	if dir == "" {
		fsys, root = examples.Agents(), "requests"
	}
	entries, err := fs.ReadDir(fsys, root)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || e.Name() == "expected.json" {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(root, e.Name()))
		if err != nil {
			return nil, err
		}
		var ar pdpv1.AuthorizeRequest
		if err := protojson.Unmarshal(data, &ar); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		req, err := grpcapi.DecodeRequest(&ar, engine.DefaultLimits)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		req.Now = now
		out = append(out, namedRequest{"request: " + strings.TrimSuffix(e.Name(), ".json"), req})
	}
	return out, nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/intentpdp/intentpdp/policystore"
)

// check validates a bundle directory and prints a summary, or every problem
// with its file:line.
func check(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: intentpdp check DIR")
	}
	b, err := policystore.LoadDir(fs.Arg(0))
	if err != nil {
		return err
	}
	snap, err := policystore.Compile(b)
	var verr *policystore.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			fmt.Fprintln(stdout, p)
		}
		return fmt.Errorf("%s: %d problem(s)", fs.Arg(0), len(verr.Problems))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n  revision: %s\n  policies: %d\n  entities: %d\n  schema:   %t\n",
		fs.Arg(0), snap.Revision(), snap.PolicyCount(), snap.EntityCount(), snap.Schema() != nil)
	return nil
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

const grantUsage = `Usage:
  intentpdp grant create --task ID --assignee TYPE::ID --action ID... --scope TYPE::ID... [--approved-by TYPE::ID]
                         [--purpose S] [--ttl 15m] [--max-uses N] [--on-behalf-of TYPE::ID] | --file GRANT.json
  intentpdp grant revoke --task ID | --principal TYPE::ID
  intentpdp grant show --task ID
  intentpdp grant list [--principal TYPE::ID] [--page-size N] [--page-token T]

Every subcommand talks to the admin API (--admin, default the --admin-listen
default) and prints the response as JSON. With mutual TLS on the admin
listener, give --cacert and the operator's X.509-SVID (--cert, --key): the
operator is then the grant's approver, and --approved-by may be left out.
`

// entityList is a repeatable TYPE::ID flag.
type entityList []*pdpv1.EntityRef

func (l *entityList) String() string { return fmt.Sprint(len(*l)) }
func (l *entityList) Set(v string) error {
	r, err := parseRef(v)
	if err != nil {
		return err
	}
	*l = append(*l, r)
	return nil
}

// parseRef reads TYPE::ID or TYPE::"ID"; the type may be namespaced
// (Acme::Agent::planner), the id follows the last "::".
func parseRef(v string) (*pdpv1.EntityRef, error) {
	i := strings.LastIndex(v, "::")
	if quoted := strings.Index(v, `::"`); quoted >= 0 {
		i = quoted
	}
	if i <= 0 {
		return nil, fmt.Errorf("%q: want TYPE::ID", v)
	}
	return &pdpv1.EntityRef{Type: v[:i], Id: strings.Trim(v[i+2:], `"`)}, nil
}

// refFlag is an optional TYPE::ID flag.
type refFlag struct{ ref *pdpv1.EntityRef }

func (f *refFlag) String() string { return "" }
func (f *refFlag) Set(v string) (err error) {
	f.ref, err = parseRef(v)
	return err
}

// actionList is a repeatable action flag: an id (Action::"id") or
// TYPE::ID for a namespaced action type.
type actionList []*pdpv1.EntityRef

func (l *actionList) String() string { return fmt.Sprint(len(*l)) }
func (l *actionList) Set(v string) error {
	if !strings.Contains(v, "::") {
		*l = append(*l, &pdpv1.EntityRef{Type: "Action", Id: v})
		return nil
	}
	r, err := parseRef(v)
	if err == nil {
		*l = append(*l, r)
	}
	return err
}

func grantCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("missing subcommand\n\n" + grantUsage)
	}
	fs := flag.NewFlagSet("grant "+args[0], flag.ContinueOnError)
	admin := fs.String("admin", defaultReload.AdminListen, "admin API address")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of the call")
	caFile := fs.String("cacert", "", "PEM CAs that verify the admin API's certificate (TLS)")
	certFile := fs.String("cert", "", "PEM client certificate (the operator's X.509-SVID) for mutual TLS")
	keyFile := fs.String("key", "", "PEM private key of --cert")
	var (
		req       pdpv1.GrantRequest
		assignee  refFlag
		approver  refFlag
		behalf    refFlag
		principal refFlag
		actions   actionList
		scope     entityList
		ttl       time.Duration
		file      string
		pageSize  int
		pageToken string
	)
	task := fs.String("task", "", "task id")
	switch args[0] {
	case "create":
		fs.Var(&assignee, "assignee", "the grant's assignee, TYPE::ID")
		fs.Var(&approver, "approved-by", "who approves the grant, TYPE::ID (required without mutual TLS; with it, the caller, which this must name if given)")
		fs.Var(&behalf, "on-behalf-of", "whom the assignee acts for, TYPE::ID")
		fs.Var(&actions, "action", "an action (or action group) the grant covers; repeatable")
		fs.Var(&scope, "scope", "an entity the grant covers, with everything in it, TYPE::ID; repeatable")
		fs.StringVar(&req.Purpose, "purpose", "", "why the grant exists")
		fs.DurationVar(&ttl, "ttl", 0, "lifetime (default: --max-grant-ttl of the server)")
		fs.Int64Var(&req.MaxUses, "max-uses", 0, "allows the grant may give (0: no limit)")
		fs.StringVar(&file, "file", "", "a GrantRequest as JSON instead of the flags")
	case "revoke", "list":
		fs.Var(&principal, "principal", "a principal: revoke or list the grants it is part of, TYPE::ID")
		fs.IntVar(&pageSize, "page-size", 0, "list: grants per page")
		fs.StringVar(&pageToken, "page-token", "", "list: continue from a previous page")
	case "show":
	default:
		return fmt.Errorf("unknown subcommand %q\n\n%s", args[0], grantUsage)
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	creds, err := adminCredentials(*caFile, *certFile, *keyFile)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(*admin, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pdpv1.NewGrantServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var resp proto.Message
	switch args[0] {
	case "create":
		if file != "" {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if err := protojson.Unmarshal(data, &req); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
		} else {
			req.TaskId, req.Assignee, req.ApprovedBy, req.OnBehalfOf = *task, assignee.ref, approver.ref, behalf.ref
			req.Actions, req.Scope = actions, scope
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
		}
		resp, err = client.Grant(ctx, &req)
	case "revoke":
		if principal.ref != nil {
			resp, err = client.RevokePrincipal(ctx, &pdpv1.RevokePrincipalRequest{Principal: principal.ref})
		} else {
			resp, err = client.Revoke(ctx, &pdpv1.RevokeRequest{TaskId: *task})
		}
	case "show":
		resp, err = client.GetGrant(ctx, &pdpv1.GetGrantRequest{TaskId: *task})
	case "list":
		resp, err = client.ListGrants(ctx, &pdpv1.ListGrantsRequest{Principal: principal.ref, PageSize: int32(pageSize), PageToken: pageToken})
	}
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(out))
	return err
}

// adminCredentials are the transport credentials of a client of the admin
// API: plaintext without files, TLS with --cacert, mutual TLS with --cert
// and --key.
func adminCredentials(caFile, certFile, keyFile string) (credentials.TransportCredentials, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return insecure.NewCredentials(), nil
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--cert and --key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// Command agent is a minimal MCP client for the MCP gateway walk-through
// (examples/mcp): it lists tools, calls one or reads a resource, as an
// agent would, with its intent in the request's _meta. Over Streamable HTTP (--url) it
// proves who it is with a short-lived token it signs itself, as an
// identity provider would issue one; `agent keygen` writes the key and
// the JWKS that intentpdp verifies those tokens with (--jwks-file). After
// "--" it launches a command and speaks MCP to it over stdio instead.
//
//	agent keygen
//	agent [--as NAME] [--task ID] [--purpose P] list [-- COMMAND ARGS...]
//	agent [--as NAME] [--task ID] [--purpose P] call TOOL ARGS_JSON [-- COMMAND ARGS...]
//	agent [--as NAME] [--task ID] [--purpose P] read URI [-- COMMAND ARGS...]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

type options struct {
	url, as, task, purpose, key, issuer, audience string
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8282/mcp", "the MCP gateway's Streamable HTTP endpoint")
	fs.StringVar(&o.as, "as", "triage-bot", "the agent's name: the subject of its token")
	fs.StringVar(&o.task, "task", "", "task id, sent as _meta io.intentpdp/task_id")
	fs.StringVar(&o.purpose, "purpose", "triage", "purpose, sent as _meta io.intentpdp/purpose")
	fs.StringVar(&o.key, "key", "agent-key.json", "the signing key agent keygen wrote")
	fs.StringVar(&o.issuer, "issuer", "https://issuer.example", "the tokens' issuer (intentpdp serve --token-issuer)")
	fs.StringVar(&o.audience, "audience", "intentpdp", "the tokens' audience (intentpdp serve --token-audience)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	var command []string
	if i := slices.Index(rest, "--"); i >= 0 {
		rest, command = rest[:i], rest[i+1:]
	}
	switch {
	case len(rest) == 1 && rest[0] == "keygen":
		return keygen(o.key, "jwks.json")
	case len(rest) == 1 && rest[0] == "list":
	case len(rest) == 3 && rest[0] == "call":
	case len(rest) == 2 && rest[0] == "read":
	default:
		return errors.New("usage: agent keygen | agent [flags] list | agent [flags] call TOOL ARGS_JSON | agent [flags] read URI, then optionally -- COMMAND ARGS...")
	}
	cs, err := connect(ctx, o, command)
	if err != nil {
		return err
	}
	defer cs.Close()
	meta := mcp.Meta{"io.intentpdp/purpose": o.purpose}
	if o.task != "" {
		meta["io.intentpdp/task_id"] = o.task
	}
	if rest[0] == "list" {
		res, err := cs.ListTools(ctx, &mcp.ListToolsParams{Meta: meta})
		if err != nil {
			return err
		}
		for _, t := range res.Tools {
			fmt.Printf("%-20s %s\n", t.Name, t.Description)
		}
		return nil
	}
	if rest[0] == "read" {
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{Meta: meta, URI: rest[1]})
		if err != nil {
			return err
		}
		for _, c := range res.Contents {
			fmt.Print(c.Text)
		}
		return nil
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: meta, Name: rest[1], Arguments: json.RawMessage(rest[2])})
	if err != nil {
		return err
	}
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			fmt.Println(t.Text)
		}
	}
	if res.IsError {
		return errors.New("the call failed")
	}
	return nil
}

// connect opens an MCP session: to command over stdio when one is given,
// else to the gateway at o.url with a fresh token.
func connect(ctx context.Context, o options, command []string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "example-agent", Version: "1"}, nil)
	if len(command) > 0 {
		cmd := exec.Command(command[0], command[1:]...)
		cmd.Stderr = os.Stderr
		return client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	}
	token, err := mint(o)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: bearer(token)}
	return client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: o.url, HTTPClient: hc}, nil)
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// keygen writes a new ES256 signing key and the JWKS that publishes its
// public half.
func keygen(keyFile, jwksFile string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	priv, err := json.Marshal(jose.JSONWebKey{Key: k, KeyID: "agent-1", Algorithm: "ES256", Use: "sig"})
	if err != nil {
		return err
	}
	pub, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: "agent-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(jwksFile, pub, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s (signing key) and %s (for intentpdp serve --jwks-file)\n", keyFile, jwksFile)
	return nil
}

// mint signs a five-minute token for the agent o.as.
func mint(o options) (string, error) {
	data, err := os.ReadFile(o.key)
	if err != nil {
		return "", fmt.Errorf("%w (run agent keygen first)", err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(data); err != nil {
		return "", fmt.Errorf("%s: %w", o.key, err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.KeyID))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: o.issuer, Subject: strings.TrimSpace(o.as), Audience: jwt.Audience{o.audience},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Serialize()
}

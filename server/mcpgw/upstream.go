package mcpgw

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"os/exec"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Upstream is one MCP server behind the gateway, connected on first use
// and again after its connection is lost (a crashed stdio server is
// started anew on the next call).
type Upstream struct {
	cfg    UpstreamConfig
	client *mcp.Client
	log    *slog.Logger

	mu      sync.Mutex
	session *mcp.ClientSession
}

func newUpstream(cfg UpstreamConfig, log *slog.Logger) *Upstream {
	return &Upstream{
		cfg:    cfg,
		client: mcp.NewClient(&mcp.Implementation{Name: "intentpdp-gateway", Version: "1"}, nil),
		log:    log,
	}
}

// connected returns the live session, connecting when there is none.
func (u *Upstream) connected(ctx context.Context) (*mcp.ClientSession, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.session != nil {
		return u.session, nil
	}
	var t mcp.Transport
	if u.cfg.URL != "" {
		t = &mcp.StreamableClientTransport{Endpoint: u.cfg.URL}
	} else {
		// The command outlives the call that started it: it is stopped by
		// close, not by this request's context.
		cmd := exec.Command(u.cfg.Command[0], u.cfg.Command[1:]...)
		cmd.Env = os.Environ()
		for k, v := range u.cfg.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		t = &mcp.CommandTransport{Command: cmd}
	}
	s, err := u.client.Connect(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to upstream %s: %w", u.cfg.Name, err)
	}
	u.session = s
	go u.watch(s)
	return s, nil
}

// watch forgets s once its connection ends, so the next call reconnects.
func (u *Upstream) watch(s *mcp.ClientSession) {
	u.forget(s, s.Wait())
}

// forget drops s if it is still the live session.
func (u *Upstream) forget(s *mcp.ClientSession, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.session != s {
		return
	}
	u.session = nil
	u.log.Warn("upstream connection lost; reconnecting on the next call", "upstream", u.cfg.Name, "err", err)
	go s.Close() // stops a stdio child that is still running
}

// capabilities are what the upstream said it offers when it connected.
func (u *Upstream) capabilities(ctx context.Context) (*mcp.ServerCapabilities, error) {
	s, err := u.connected(ctx)
	if err != nil {
		return nil, err
	}
	if init := s.InitializeResult(); init != nil && init.Capabilities != nil {
		return init.Capabilities, nil
	}
	return &mcp.ServerCapabilities{}, nil
}

// list reads a whole list of the upstream's (tools, resources, ...)
// through one of the session's paginating iterators.
func list[T any](ctx context.Context, u *Upstream, what string, all func(*mcp.ClientSession) iter.Seq2[T, error]) ([]T, error) {
	s, err := u.connected(ctx)
	if err != nil {
		return nil, err
	}
	var out []T
	for v, err := range all(s) {
		if err != nil {
			return nil, fmt.Errorf("list the %s of upstream %s: %w", what, u.cfg.Name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (u *Upstream) tools(ctx context.Context) ([]*mcp.Tool, error) {
	return list(ctx, u, "tools", func(s *mcp.ClientSession) iter.Seq2[*mcp.Tool, error] { return s.Tools(ctx, nil) })
}

func (u *Upstream) resources(ctx context.Context) ([]*mcp.Resource, error) {
	return list(ctx, u, "resources", func(s *mcp.ClientSession) iter.Seq2[*mcp.Resource, error] { return s.Resources(ctx, nil) })
}

func (u *Upstream) resourceTemplates(ctx context.Context) ([]*mcp.ResourceTemplate, error) {
	return list(ctx, u, "resource templates", func(s *mcp.ClientSession) iter.Seq2[*mcp.ResourceTemplate, error] {
		return s.ResourceTemplates(ctx, nil)
	})
}

func (u *Upstream) prompts(ctx context.Context) ([]*mcp.Prompt, error) {
	return list(ctx, u, "prompts", func(s *mcp.ClientSession) iter.Seq2[*mcp.Prompt, error] { return s.Prompts(ctx, nil) })
}

// call forwards one allowed call, its arguments exactly as the agent sent
// them.
func (u *Upstream) call(ctx context.Context, name string, args []byte) (*mcp.CallToolResult, error) {
	var arguments any
	if len(args) > 0 {
		arguments = rawJSON(args)
	}
	return forward(ctx, u, func(s *mcp.ClientSession) (*mcp.CallToolResult, error) {
		return s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: arguments})
	})
}

// readResource forwards one allowed resources/read.
func (u *Upstream) readResource(ctx context.Context, uri string) (*mcp.ReadResourceResult, error) {
	return forward(ctx, u, func(s *mcp.ClientSession) (*mcp.ReadResourceResult, error) {
		return s.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
	})
}

// getPrompt forwards one allowed prompts/get.
func (u *Upstream) getPrompt(ctx context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error) {
	return forward(ctx, u, func(s *mcp.ClientSession) (*mcp.GetPromptResult, error) {
		return s.GetPrompt(ctx, &mcp.GetPromptParams{Name: name, Arguments: args})
	})
}

// forward sends one allowed request to the upstream.
func forward[R any](ctx context.Context, u *Upstream, send func(*mcp.ClientSession) (*R, error)) (*R, error) {
	s, err := u.connected(ctx)
	if err != nil {
		return nil, err
	}
	res, err := send(s)
	var answered *jsonrpc.Error
	if err != nil && !errors.As(err, &answered) {
		// Not an answer from the upstream: the connection failed or this
		// request was cut off. Start afresh on the next one, whether or
		// not watch has seen the session end yet.
		u.forget(s, err)
	}
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("empty result")
	}
	return res, nil
}

// rawJSON marshals as itself, so arguments pass through byte for byte.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func (u *Upstream) close() {
	u.mu.Lock()
	s := u.session
	u.session = nil
	u.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

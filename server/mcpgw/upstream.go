package mcpgw

import (
	"context"
	"errors"
	"fmt"
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

// tools reads the upstream's whole tool list.
func (u *Upstream) tools(ctx context.Context) ([]*mcp.Tool, error) {
	s, err := u.connected(ctx)
	if err != nil {
		return nil, err
	}
	var out []*mcp.Tool
	for t, err := range s.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list the tools of upstream %s: %w", u.cfg.Name, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// call forwards one allowed call, its arguments exactly as the agent sent
// them.
func (u *Upstream) call(ctx context.Context, name string, args []byte) (*mcp.CallToolResult, error) {
	s, err := u.connected(ctx)
	if err != nil {
		return nil, err
	}
	var arguments any
	if len(args) > 0 {
		arguments = rawJSON(args)
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: arguments})
	var answered *jsonrpc.Error
	if err != nil && !errors.As(err, &answered) {
		// Not an answer from the upstream: the connection failed or this
		// call was cut off. Start afresh on the next call, whether or not
		// watch has seen the session end yet.
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

// Command fakegithub is a small GitHub-like MCP server for the MCP gateway
// walk-through (examples/mcp): repositories and issues in memory, read and
// write tools, delete_repo, and each repository's README as a resource. It speaks MCP over Streamable HTTP on a
// loopback address (--listen) or over stdio (--stdio).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type repoArgs struct {
	Owner string `json:"owner" jsonschema:"the repository's owner"`
	Repo  string `json:"repo" jsonschema:"the repository's name"`
}

type listIssuesArgs struct {
	repoArgs
	State string `json:"state,omitempty" jsonschema:"open or closed (default: both)"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many issues"`
}

type createIssueArgs struct {
	repoArgs
	Title  string   `json:"title" jsonschema:"the issue's title"`
	Body   string   `json:"body,omitempty"`
	Labels []string `json:"labels,omitempty"`
}

type mergeArgs struct {
	repoArgs
	Number      int    `json:"number" jsonschema:"the pull request's number"`
	MergeMethod string `json:"merge_method,omitempty" jsonschema:"merge, squash or rebase"`
}

type issue struct {
	Number int      `json:"number"`
	Title  string   `json:"title"`
	State  string   `json:"state"`
	Labels []string `json:"labels,omitempty"`
}

type repo struct {
	FullName string  `json:"full_name"`
	Issues   []issue `json:"-"`
	Merged   []int   `json:"merged_pull_requests,omitempty"`
}

// github is the server's state; its tools are safe for concurrent use.
type github struct {
	mu    sync.Mutex
	repos map[string]*repo
}

func newGitHub() *github {
	return &github{repos: map[string]*repo{
		"acme/web": {FullName: "acme/web", Issues: []issue{{1, "Login page is slow", "open", []string{"perf"}}, {2, "Typo in footer", "closed", nil}}},
		"acme/api": {FullName: "acme/api", Issues: []issue{{1, "Rate limit headers missing", "open", nil}}},
	}}
}

func (g *github) find(a repoArgs) (*repo, error) {
	r, ok := g.repos[a.Owner+"/"+a.Repo]
	if !ok {
		return nil, fmt.Errorf("repository %s/%s not found", a.Owner, a.Repo)
	}
	return r, nil
}

func (g *github) server() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "fakegithub", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "get_repo", Description: "Get a repository."}, locked(g, func(a repoArgs) (any, error) {
		return g.find(a)
	}))
	mcp.AddTool(s, &mcp.Tool{Name: "list_issues", Description: "List a repository's issues."}, locked(g, func(a listIssuesArgs) (any, error) {
		r, err := g.find(a.repoArgs)
		if err != nil {
			return nil, err
		}
		out := []issue{}
		for _, i := range r.Issues {
			if (a.State == "" || a.State == i.State) && (a.Limit == 0 || len(out) < a.Limit) {
				out = append(out, i)
			}
		}
		return out, nil
	}))
	mcp.AddTool(s, &mcp.Tool{Name: "create_issue", Description: "Open an issue."}, locked(g, func(a createIssueArgs) (any, error) {
		r, err := g.find(a.repoArgs)
		if err != nil {
			return nil, err
		}
		i := issue{Number: len(r.Issues) + 1, Title: a.Title, State: "open", Labels: a.Labels}
		r.Issues = append(r.Issues, i)
		return i, nil
	}))
	mcp.AddTool(s, &mcp.Tool{Name: "merge_pull_request", Description: "Merge a pull request."}, locked(g, func(a mergeArgs) (any, error) {
		r, err := g.find(a.repoArgs)
		if err != nil {
			return nil, err
		}
		if slices.Contains(r.Merged, a.Number) {
			return nil, fmt.Errorf("pull request #%d is already merged", a.Number)
		}
		r.Merged = append(r.Merged, a.Number)
		return map[string]any{"merged": a.Number}, nil
	}))
	mcp.AddTool(s, &mcp.Tool{Name: "delete_repo", Description: "Delete a repository, for good."}, locked(g, func(a repoArgs) (any, error) {
		if _, err := g.find(a); err != nil {
			return nil, err
		}
		delete(g.repos, a.Owner+"/"+a.Repo)
		return map[string]any{"deleted": a.Owner + "/" + a.Repo}, nil
	}))
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "github://{owner}/{repo}/readme", Name: "readme", Description: "A repository's README.", MIMEType: "text/markdown"},
		func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			g.mu.Lock()
			defer g.mu.Unlock()
			for name, repo := range g.repos {
				if r.Params.URI == "github://"+name+"/readme" {
					text := fmt.Sprintf("# %s\n\n%d issues.\n", repo.FullName, len(repo.Issues))
					return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, MIMEType: "text/markdown", Text: text}}}, nil
				}
			}
			return nil, mcp.ResourceNotFoundError(r.Params.URI)
		})
	return s
}

// locked makes f a tool handler that runs under g's lock and answers with
// its result as JSON text (an error as a tool error).
func locked[In any](g *github, f func(In) (any, error)) mcp.ToolHandlerFor[In, any] {
	return func(_ context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		g.mu.Lock()
		out, err := f(in)
		var text []byte
		if err == nil {
			text, err = json.Marshal(out)
		}
		g.mu.Unlock()
		if err != nil {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}}, nil, nil
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "loopback address to serve MCP over Streamable HTTP on (path /mcp)")
	stdio := flag.Bool("stdio", false, "serve MCP over stdin/stdout instead")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *listen, *stdio); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func run(ctx context.Context, listen string, stdio bool) error {
	g := newGitHub()
	if stdio {
		return g.server().Run(ctx, &mcp.StdioTransport{})
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %s: a loopback address only (this server has no authentication)", listen)
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	s := g.server()
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Printf("fakegithub: serving MCP on http://%s/mcp", lis.Addr())
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err()
}

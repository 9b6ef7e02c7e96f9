package gateway

import (
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

func TestRouteMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		route      RouteConfig
		method     string
		path       string
		want       bool
		wantParams map[string]string
		wantRes    types.EntityUID
	}{
		{
			name:   "template",
			route:  RouteConfig{Method: "GET", Path: "/repos/{repo}/issues", Action: "list_issues", Resource: ResourceConfig{Type: "Repository", ID: "{repo}"}},
			method: "GET", path: "/repos/payments-api/issues", want: true,
			wantParams: map[string]string{"repo": "payments-api"},
			wantRes:    types.NewEntityUID("Repository", "payments-api"),
		},
		{
			name:   "rest parameter and composite id",
			route:  RouteConfig{Method: "GET", Path: "/repos/{repo}/contents/{path...}", Action: "read_file", Resource: ResourceConfig{Type: "Document", ID: "{repo}/{path}"}},
			method: "GET", path: "/repos/r/contents/docs/a%20b.md", want: true,
			wantParams: map[string]string{"repo": "r", "path": "docs/a b.md"},
			wantRes:    types.NewEntityUID("Document", "r/docs/a b.md"),
		},
		{
			name:   "escaped pchars and unicode",
			route:  RouteConfig{Path: "/repos/{repo}/issues", Action: "a", Resource: ResourceConfig{Type: "R", ID: "{repo}"}},
			method: "GET", path: "/repos/%61pi(%C3%A9)%2C@x/issues", want: true,
			wantParams: map[string]string{"repo": "api(é),@x"},
			wantRes:    types.NewEntityUID("R", "api(é),@x"),
		},
		{
			name:   "root",
			route:  RouteConfig{Path: "/", Action: "a", Resource: ResourceConfig{Type: "R", ID: "root"}},
			method: "GET", path: "/", want: true,
			wantParams: map[string]string{},
			wantRes:    types.NewEntityUID("R", "root"),
		},
		{
			name:   "fixed resource id",
			route:  RouteConfig{Path: "/admin", Action: "admin", Resource: ResourceConfig{Type: "Service", ID: "console"}},
			method: "POST", path: "/admin", want: true,
			wantParams: map[string]string{},
			wantRes:    types.NewEntityUID("Service", "console"),
		},
		{name: "other method", route: RouteConfig{Method: "GET", Path: "/a", Action: "a", Resource: ResourceConfig{Type: "R"}}, method: "POST", path: "/a"},
		{name: "longer path", route: RouteConfig{Path: "/a/{x}", Action: "a", Resource: ResourceConfig{Type: "R"}}, method: "GET", path: "/a/b/c"},
		{name: "shorter path", route: RouteConfig{Path: "/a/{x}", Action: "a", Resource: ResourceConfig{Type: "R"}}, method: "GET", path: "/a"},
		{name: "root is no segment", route: RouteConfig{Path: "/{x}", Action: "a", Resource: ResourceConfig{Type: "R"}}, method: "GET", path: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := compileRoute(tt.route)
			if err != nil {
				t.Fatal(err)
			}
			params, ok := matchPath(r, tt.method, tt.path)
			if ok != tt.want {
				t.Fatalf("match = %v, want %v", ok, tt.want)
			}
			if !ok {
				return
			}
			if !maps.Equal(params, tt.wantParams) {
				t.Errorf("params %v, want %v", params, tt.wantParams)
			}
			if got := r.resource(params); got != tt.wantRes {
				t.Errorf("resource %v, want %v", got, tt.wantRes)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Principal: PrincipalConfig{Type: "Agent::"},
		Routes: []RouteConfig{
			{Path: "/a", Resource: ResourceConfig{Type: "R"}},
			{Path: "a", Action: "x", Resource: ResourceConfig{Type: "R"}},
			{Path: "/a/{x...}/b", Action: "x", Resource: ResourceConfig{Type: "R"}},
			{Path: "/a/{x}", Action: "x", Resource: ResourceConfig{Type: "R", ID: "{y}"}},
			{Path: "/a/b{x}", Action: "x", Resource: ResourceConfig{Type: "R"}},
			{Path: "/a", Action: "x"},
			{Path: "/a/", Action: "x", Resource: ResourceConfig{Type: "R"}},
			{Path: "/a/../b", Action: "x", Resource: ResourceConfig{Type: "R"}},
		},
		ForwardAuth:    ForwardAuthConfig{MethodHeader: "X-Forwarded-Uri", URIHeader: "X-Forwarded-Uri", HostHeader: "bad header"},
		ContextHeaders: []string{"bad header"},
	}
	cfg.SetDefaults()
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{
		"routes[0]: action is required",
		"routes[1]: path \"a\" must start with /",
		"routes[2]: path \"/a/{x...}/b\": {x...} must be the last segment",
		"routes[3]: resource.id: {y} is not a parameter of the path",
		"routes[4]: path \"/a/b{x}\": segment \"b{x}\" mixes literal text and a parameter",
		"routes[5]: resource.type is required",
		"context_headers: \"bad header\" is not a header name",
		"routes[6]: path \"/a/\": segment \"\" is empty",
		"routes[7]: path \"/a/../b\": segment \"..\" is a dot segment",
		"forward_auth.uri_header: \"X-Forwarded-Uri\" is also forward_auth.method_header",
		"forward_auth.host_header: \"bad header\" is not a header name",
		"principal.type \"Agent::\"",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
}

func TestLoadConfigRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/gateway.json"
	writeFile(t, path, `{"principal": {"typ": "Agent"}}`)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "typ") {
		t.Errorf("LoadConfig = %v, want an unknown-field error", err)
	}
}

func TestLoadExampleConfig(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../../examples/gateway/agents.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// FuzzRouteMatch: any method and path, escaped or not, either matches with
// parameters that rebuild a resource, or does not; it never panics.
func FuzzRouteMatch(f *testing.F) {
	for _, p := range []string{"/repos/r/contents/a/b", "/repos/%2F/contents/%", "//", "/repos/../contents/x", ""} {
		f.Add("GET", p)
	}
	r, err := compileRoute(RouteConfig{Path: "/repos/{repo}/contents/{path...}", Action: "read_file", Resource: ResourceConfig{Type: "Document", ID: "{repo}/{path}"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		params, ok := matchPath(r, method, path)
		if !ok {
			return
		}
		if params["repo"] == "" || params["path"] == "" {
			t.Fatalf("match of %q with empty parameters %v", path, params)
		}
		_ = r.resource(params)
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// matchPath matches a whole escaped path, as Checker.mapRequest does.
func matchPath(r route, method, path string) (map[string]string, bool) {
	parts, _, err := canonicalPath(path)
	if err != nil {
		return nil, false
	}
	return r.match(method, parts)
}

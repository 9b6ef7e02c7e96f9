package mcpgw

import (
	"encoding/json"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/grpc/codes"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// Paths of the gateway on an HTTP listener.
const (
	Path                 = "/mcp"
	ResourceMetadataPath = "/.well-known/oauth-protected-resource"
)

// HTTPOptions configure the Streamable HTTP side of the gateway, where it
// is an OAuth resource server as the MCP authorization specification
// describes: every request carries a bearer token, which the engine
// verifies.
type HTTPOptions struct {
	// Resource is the gateway's canonical URL (https://pdp.example/mcp),
	// the audience tokens are issued for.
	Resource string
	// AuthorizationServers are the issuers agents get tokens from.
	AuthorizationServers []string
}

// HTTPHandler serves the gateway over Streamable HTTP at Path and its
// protected resource metadata (RFC 9728) at ResourceMetadataPath. A
// request without a valid bearer token is answered 401 with a
// WWW-Authenticate challenge naming the metadata, before MCP sees it.
func (g *Gateway) HTTPHandler(o HTTPOptions) http.Handler {
	mux := http.NewServeMux()
	metadata, _ := json.Marshal(map[string]any{
		"resource":                 o.Resource,
		"authorization_servers":    o.AuthorizationServers,
		"bearer_methods_supported": []string{"header"},
	})
	mux.HandleFunc("GET "+ResourceMetadataPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(metadata)
	})
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return g.server }, &mcp.StreamableHTTPOptions{Logger: g.log})
	mux.Handle(Path, g.authenticated(streamable, o))
	return mux
}

// authenticated lets through only requests whose bearer token the engine
// verifies.
func (g *Gateway) authenticated(next http.Handler, o HTTPOptions) http.Handler {
	challenge := `Bearer resource_metadata="` + o.Resource + ResourceMetadataPath + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, int64(g.limits.MaxMessageBytes))
		token, ok := bearer(r.Header)
		if !ok {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		pinned, err := g.engine.Pin()
		if err == nil {
			ctx := engine.WithCredentials(r.Context(), engine.Credentials{PrincipalToken: token})
			_, err = pinned.Prepare(ctx, policystore.Request{})
		}
		if err != nil {
			f := engine.Classify(err)
			if f.Code == codes.Unauthenticated {
				w.Header().Set("WWW-Authenticate", challenge+`, error="invalid_token", error_description="`+f.Reason+`"`)
			}
			http.Error(w, f.Message, f.HTTPStatus)
			return
		}
		next.ServeHTTP(w, r)
	})
}

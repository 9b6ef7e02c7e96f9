package mcpgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
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
// WWW-Authenticate challenge naming the metadata, and a POST that is not
// one JSON-RPC 2.0 message is answered with a JSON-RPC error, both before
// MCP sees them.
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
	mux.Handle(Path, g.authenticated(wellFormed(streamable), o))
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

// wellFormed answers a POST whose body is not one JSON-RPC 2.0 message
// (not JSON, another version, a batch, which MCP has not had since
// 2025-06-18, or a body over the size limit) with a JSON-RPC error, so
// the agent reads why in the protocol it speaks.
func wellFormed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			rpcError(w, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest, fmt.Sprintf("the request is over the limit of %d bytes", tooBig.Limit))
			return
		case err != nil:
			rpcError(w, http.StatusBadRequest, jsonrpc.CodeParseError, "reading the request: "+err.Error())
			return
		}
		if code, why := malformed(body); why != "" {
			rpcError(w, http.StatusBadRequest, code, why)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// malformed says what keeps body from being one JSON-RPC 2.0 message;
// empty when nothing does (the MCP server checks the rest).
func malformed(body []byte) (code int64, why string) {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		return jsonrpc.CodeInvalidRequest, "JSON-RPC batches are not accepted: send one message per request"
	}
	// A map, not a struct: encoding/json matches struct fields ignoring
	// case, and "JSONRPC" is not "jsonrpc".
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		return jsonrpc.CodeParseError, "not a JSON-RPC message: " + err.Error()
	}
	if string(msg["jsonrpc"]) != `"2.0"` {
		return jsonrpc.CodeInvalidRequest, `not a JSON-RPC 2.0 message: "jsonrpc" must be "2.0"`
	}
	return 0, ""
}

// rpcError answers with a JSON-RPC error response without an id (the
// request's could not be read).
func rpcError(w http.ResponseWriter, status int, code int64, message string) {
	body, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"id":      nil,
		"error":   &jsonrpc.Error{Code: code, Message: message},
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

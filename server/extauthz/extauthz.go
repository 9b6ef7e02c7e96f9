// Package extauthz serves Envoy's external authorization API
// (envoy.service.auth.v3.Authorization/Check), mapping requests with the
// gateway library and deciding through the engine.
package extauthz

import (
	"context"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// FrontEnd is how metrics, spans and the decision log name this front end.
const FrontEnd engine.FrontEnd = "ext_authz"

// Server implements authv3.AuthorizationServer. It is safe for concurrent
// use.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	checker *gateway.Checker
}

// New returns a Server deciding through checker.
func New(checker *gateway.Checker) *Server { return &Server{checker: checker} }

// Register adds the ext_authz service to gs, next to AuthorizationService.
func Register(gs *grpc.Server, checker *gateway.Checker) {
	authv3.RegisterAuthorizationServer(gs, New(checker))
}

// Check answers Envoy. It always returns a CheckResponse, never a gRPC
// error: a transport error would let an Envoy configured with
// failure_mode_allow through, whereas a non-OK status in the response is a
// denial whatever Envoy's configuration.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	greq := gatewayRequest(req)
	if tok := gateway.BearerToken(greq.Header); tok != "" {
		// Envoy forwards the client's headers, authorization included.
		c := engine.CredentialsFrom(ctx)
		c.PrincipalToken = tok
		ctx = engine.WithCredentials(ctx, c)
	}
	a := s.checker.Check(ctx, greq)
	if a.Allow {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: headerOptions(a.Header),
			}},
		}, nil
	}
	h := a.Header.Clone()
	h.Set("Content-Type", "application/json")
	return &authv3.CheckResponse{
		Status: deniedStatus(a),
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(a.HTTPStatus)},
			Headers: headerOptions(h),
			Body:    string(a.Body),
		}},
	}, nil
}

// deniedStatus is PermissionDenied for a policy deny, else the status of
// the failure that prevented a decision, its reason included.
func deniedStatus(a gateway.Answer) *rpcstatus.Status {
	if a.Failure == nil {
		return &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: "denied by policy"}
	}
	return a.Failure.Status().Proto()
}

// gatewayRequest reads what the gateway mapping needs from Envoy's
// attribute context: the HTTP request, the mTLS peer's SPIFFE ID and the
// jwt_authn metadata.
func gatewayRequest(req *authv3.CheckRequest) gateway.Request {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	out := gateway.Request{
		FrontEnd: FrontEnd,
		Method:   h.GetMethod(),
		Path:     h.GetPath(),
		Host:     h.GetHost(),
		Header:   http.Header{},
		SPIFFEID: spiffeID(attrs.GetSource().GetPrincipal()),
	}
	for k, v := range h.GetHeaders() {
		out.Header.Set(k, v)
	}
	// Envoy sends header_map instead of headers when encode_raw_headers is on.
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		v := hv.GetValue()
		if v == "" {
			v = string(hv.GetRawValue())
		}
		out.Header.Add(hv.GetKey(), v)
	}
	if sa := attrs.GetSource().GetAddress().GetSocketAddress(); sa != nil {
		out.SourceAddress = sa.GetAddress()
	}
	if md := attrs.GetMetadataContext().GetFilterMetadata(); len(md) > 0 {
		out.FilterMetadata = make(map[string]any, len(md))
		for ns, st := range md {
			out.FilterMetadata[ns] = st.AsMap()
		}
	}
	return out
}

// spiffeID keeps the peer principal only when it is a SPIFFE ID: Envoy
// otherwise reports a certificate subject, which is no workload identity.
func spiffeID(principal string) string {
	if strings.HasPrefix(principal, "spiffe://") {
		return principal
	}
	return ""
}

func headerOptions(h http.Header) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: v},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
	}
	return out
}

package main

import (
	"log/slog"
	"net/http"

	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/server/authzen"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/extauthz"
	"github.com/intentpdp/intentpdp/server/forwardauth"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// startGateways registers Envoy ext_authz on gs and returns the handler of
// AuthZEN and forward-auth, wrapped by wrap (tracing), and the number of
// gateway routes; the handler is nil when cfg.HTTPListen is empty (the
// HTTP listener is off).
func startGateways(cfg Config, eng *engine.Engine, gs *grpc.Server, log *slog.Logger, wrap func(http.Handler) http.Handler) (h http.Handler, routes int, err error) {
	gcfg := gateway.Config{}
	if cfg.GatewayConfig != "" {
		var err error
		if gcfg, err = gateway.LoadConfig(cfg.GatewayConfig); err != nil {
			return nil, 0, err
		}
	}
	checker, err := gateway.NewChecker(eng, gcfg, append(cfg.Identity.gatewayOptions(), gateway.WithLogger(log))...)
	if err != nil {
		return nil, 0, err
	}
	extauthz.Register(gs, checker)
	if cfg.HTTPListen == "" {
		return nil, len(gcfg.Routes), nil
	}

	mux := http.NewServeMux()
	authzen.New(eng, authzen.WithLimits(cfg.Limits), authzen.WithLogger(log), authzen.WithExposeReasons(gcfg.ExposeReasons), authzen.WithBaseURL(cfg.AuthZENBaseURL)).Register(mux)
	mux.Handle(forwardauth.Path, forwardauth.New(checker))
	return wrap(mux), len(gcfg.Routes), nil
}

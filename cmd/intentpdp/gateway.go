package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/server/authzen"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/extauthz"
	"github.com/intentpdp/intentpdp/server/forwardauth"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// startGateways registers Envoy ext_authz on gs and serves AuthZEN and
// forward-auth on cfg.HTTPListen (unless it is empty), its handler wrapped
// by wrap (tracing).
// The returned function shuts the HTTP server down, waiting at most
// timeout for in-flight requests; failed receives the error if the HTTP
// listener stops on its own.
func startGateways(cfg Config, eng *engine.Engine, gs *grpc.Server, log *slog.Logger, wrap func(http.Handler) http.Handler) (stop func(timeout time.Duration), failed <-chan error, err error) {
	gcfg := gateway.Config{}
	if cfg.GatewayConfig != "" {
		var err error
		if gcfg, err = gateway.LoadConfig(cfg.GatewayConfig); err != nil {
			return nil, nil, err
		}
	}
	checker, err := gateway.NewChecker(eng, gcfg, gateway.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	extauthz.Register(gs, checker)
	if cfg.HTTPListen == "" {
		log.Info("HTTP listener off: no AuthZEN or forward-auth")
		return func(time.Duration) {}, nil, nil
	}

	mux := http.NewServeMux()
	authzen.New(eng, authzen.WithLimits(cfg.Limits), authzen.WithLogger(log), authzen.WithExposeReasons(gcfg.ExposeReasons), authzen.WithBaseURL(cfg.AuthZENBaseURL)).Register(mux)
	mux.Handle(forwardauth.Path, forwardauth.New(checker))
	lis, err := listen("http-listen", cfg.HTTPListen, true)
	if err != nil {
		return nil, nil, err
	}
	hs := cfg.HTTPLimits.server(wrap(mux), log)
	errc := make(chan error, 1)
	go func() {
		if err := hs.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP listener: %w", err)
		}
	}()
	log.Info("serving AuthZEN and forward-auth over HTTP", "addr", lis.Addr().String(), "routes", len(gcfg.Routes))
	return func(timeout time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			log.Warn("HTTP shutdown timed out; closing", "err", err)
			_ = hs.Close()
		}
	}, errc, nil
}

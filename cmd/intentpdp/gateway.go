package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/server"
	"github.com/intentpdp/intentpdp/server/authzen"
	"github.com/intentpdp/intentpdp/server/extauthz"
	"github.com/intentpdp/intentpdp/server/forwardauth"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// startGateways registers Envoy ext_authz on gs and serves AuthZEN and
// forward-auth on cfg.HTTPListen, its handler wrapped by wrap (tracing).
// The returned function shuts the HTTP server down, waiting at most
// timeout for in-flight requests; failed receives the error if the HTTP
// listener stops on its own.
func startGateways(cfg Config, svc *server.Service, gs *grpc.Server, log *slog.Logger, wrap func(http.Handler) http.Handler) (stop func(timeout time.Duration), failed <-chan error, err error) {
	gcfg := gateway.Config{}
	if cfg.GatewayConfig != "" {
		var err error
		if gcfg, err = gateway.LoadConfig(cfg.GatewayConfig); err != nil {
			return nil, nil, err
		}
	}
	checker, err := gateway.NewChecker(svc, gcfg)
	if err != nil {
		return nil, nil, err
	}
	extauthz.Register(gs, checker)

	mux := http.NewServeMux()
	authzen.New(svc, authzen.WithExposeReasons(gcfg.ExposeReasons)).Register(mux)
	mux.Handle(forwardauth.Path, forwardauth.New(checker))
	lis, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return nil, nil, err
	}
	hs := &http.Server{Handler: wrap(mux), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
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

package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// HTTPLimits bound the connections of every HTTP listener (AuthZEN and
// forward-auth, /metrics), so that slow or idle clients cannot hold
// connections open.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the response.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection left without a request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
}

var defaultHTTPLimits = HTTPLimits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       2 * time.Minute,
	MaxHeaderBytes:    64 << 10,
}

// SetDefaults fills every unset field.
func (l *HTTPLimits) SetDefaults() {
	setDefault(&l.ReadHeaderTimeout, defaultHTTPLimits.ReadHeaderTimeout)
	setDefault(&l.ReadTimeout, defaultHTTPLimits.ReadTimeout)
	setDefault(&l.WriteTimeout, defaultHTTPLimits.WriteTimeout)
	setDefault(&l.IdleTimeout, defaultHTTPLimits.IdleTimeout)
	setDefault(&l.MaxHeaderBytes, defaultHTTPLimits.MaxHeaderBytes)
}

func (l *HTTPLimits) bindFlags(fs *flag.FlagSet) {
	d := defaultHTTPLimits
	fs.DurationVar(&l.ReadHeaderTimeout, "http-read-header-timeout", d.ReadHeaderTimeout, "longest time an HTTP client may take to send a request's headers")
	fs.DurationVar(&l.ReadTimeout, "http-read-timeout", d.ReadTimeout, "longest time an HTTP client may take to send a whole request, body included")
	fs.DurationVar(&l.WriteTimeout, "http-write-timeout", d.WriteTimeout, "longest time from an HTTP request's headers to the end of its response")
	fs.DurationVar(&l.IdleTimeout, "http-idle-timeout", d.IdleTimeout, "how long an idle keep-alive HTTP connection stays open")
	fs.IntVar(&l.MaxHeaderBytes, "http-max-header-bytes", d.MaxHeaderBytes, "largest HTTP request line and headers accepted")
}

// server returns an HTTP server for h within the limits, logging its
// errors (TLS handshakes, malformed requests) to log at warn level.
func (l HTTPLimits) server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// GRPCLimits bound the connections of the gRPC listeners (decisions and
// admin).
type GRPCLimits struct {
	// MaxConcurrentStreams bounds the calls in flight on one connection;
	// further calls wait for one to finish.
	MaxConcurrentStreams uint
	// KeepaliveMinTime is the shortest interval between client pings the
	// server tolerates; a client pinging more often is disconnected.
	KeepaliveMinTime time.Duration
	// MaxConnectionIdle closes a connection without calls for this long.
	MaxConnectionIdle time.Duration
	// KeepaliveTime is how long a connection may be silent before the
	// server pings the client; KeepaliveTimeout how long the server then
	// waits for an answer before closing the connection.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
}

var defaultGRPCLimits = GRPCLimits{
	MaxConcurrentStreams: 1000,
	KeepaliveMinTime:     10 * time.Second,
	MaxConnectionIdle:    5 * time.Minute,
	KeepaliveTime:        2 * time.Minute,
	KeepaliveTimeout:     20 * time.Second,
}

// SetDefaults fills every unset field.
func (l *GRPCLimits) SetDefaults() {
	setDefault(&l.MaxConcurrentStreams, defaultGRPCLimits.MaxConcurrentStreams)
	setDefault(&l.KeepaliveMinTime, defaultGRPCLimits.KeepaliveMinTime)
	setDefault(&l.MaxConnectionIdle, defaultGRPCLimits.MaxConnectionIdle)
	setDefault(&l.KeepaliveTime, defaultGRPCLimits.KeepaliveTime)
	setDefault(&l.KeepaliveTimeout, defaultGRPCLimits.KeepaliveTimeout)
}

func (l *GRPCLimits) bindFlags(fs *flag.FlagSet) {
	d := defaultGRPCLimits
	fs.UintVar(&l.MaxConcurrentStreams, "grpc-max-concurrent-streams", d.MaxConcurrentStreams, "most gRPC calls in flight on one connection; more wait")
	fs.DurationVar(&l.KeepaliveMinTime, "grpc-keepalive-min-time", d.KeepaliveMinTime, "shortest interval between client keepalive pings; clients pinging more often are disconnected")
	fs.DurationVar(&l.MaxConnectionIdle, "grpc-max-connection-idle", d.MaxConnectionIdle, "close a gRPC connection without calls for this long")
	fs.DurationVar(&l.KeepaliveTime, "grpc-keepalive-time", d.KeepaliveTime, "ping a silent gRPC client after this long")
	fs.DurationVar(&l.KeepaliveTimeout, "grpc-keepalive-timeout", d.KeepaliveTimeout, "close a gRPC connection whose client does not answer a ping within this long")
}

func (l GRPCLimits) validate() error {
	if uint64(l.MaxConcurrentStreams) > 1<<32-1 {
		return fmt.Errorf("grpc-max-concurrent-streams %d is beyond 2^32-1", l.MaxConcurrentStreams)
	}
	return nil
}

// serverOptions are the gRPC server options of the limits.
func (l GRPCLimits) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(uint32(l.MaxConcurrentStreams)),
		// Pings on a connection without calls are allowed: MaxConnectionIdle
		// closes such connections anyway.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.MaxConnectionIdle,
			Time:              l.KeepaliveTime,
			Timeout:           l.KeepaliveTimeout,
		}),
	}
}

// setDefault sets *v to def when it is the zero value.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// setPositive sets *v to def when it is zero or negative: a negative size,
// count or duration means nothing of its own.
func setPositive[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// validateBaseURL checks an absolute http(s) URL without query or fragment.
func validateBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("want an absolute http(s) URL without user, query or fragment, e.g. https://pdp.example.org")
	}
	return nil
}

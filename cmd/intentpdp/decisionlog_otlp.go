package main

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc/credentials"

	"github.com/intentpdp/intentpdp/cmd/intentpdp/internal/tlsfiles"
	"github.com/intentpdp/intentpdp/server/decisionlog"
)

func (c *ObservabilityConfig) validateDecisionLogOTLP() []error {
	if c.DecisionLogOTLPEndpoint == "" {
		return nil
	}
	var errs []error
	if p := c.DecisionLogOTLPProtocol; p != "grpc" && p != "http/protobuf" {
		errs = append(errs, fmt.Errorf("decision-log-otlp-protocol must be grpc or http/protobuf, not %q", p))
	}
	if u, err := url.Parse(c.DecisionLogOTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("decision-log-otlp-endpoint %q: want an http:// or https:// URL", c.DecisionLogOTLPEndpoint))
	}
	return errs
}

// startOTLPDecisionLog starts the decision log writer whose sink is an
// OTLP logs exporter. The exporter neither retries nor queues: the writer
// does both, bounded and counted, as for the file.
func (o *observability) startOTLPDecisionLog(ctx context.Context, c *ObservabilityConfig, opts []decisionlog.Option) (*decisionlog.Writer, error) {
	exp, err := newLogExporter(ctx, c)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "intentpdp")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv())
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	w, err := decisionlog.New(decisionlog.NewOTLPSink(exp, res), opts...)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	o.otlpLog = w
	o.log.Info("decision log to OTLP on", "endpoint", c.DecisionLogOTLPEndpoint, "protocol", c.DecisionLogOTLPProtocol,
		"full", w.Mode().String(), "queue", w.QueueCapacity())
	return w, o.metrics.ObserveOTLPDecisionLog(w)
}

func newLogExporter(ctx context.Context, c *ObservabilityConfig) (sdklog.Exporter, error) {
	headers, _ := keyValues(c.OTLPHeaders) // checked by Validate
	tlsConf, err := tlsfiles.ClientConfig(c.OTLPCAFile)
	if err != nil {
		return nil, fmt.Errorf("otlp-ca-file: %w", err)
	}
	if c.DecisionLogOTLPProtocol == "http/protobuf" {
		// A URL is used as given (OTLP's signal-specific endpoint); a bare
		// host gets the logs path.
		endpoint := c.DecisionLogOTLPEndpoint
		if u, err := url.Parse(endpoint); err == nil && (u.Path == "" || u.Path == "/") {
			u.Path = "/v1/logs"
			endpoint = u.String()
		}
		opts := []otlploghttp.Option{otlploghttp.WithEndpointURL(endpoint), otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false})}
		if headers != nil {
			opts = append(opts, otlploghttp.WithHeaders(headers))
		}
		if tlsConf != nil {
			opts = append(opts, otlploghttp.WithTLSClientConfig(tlsConf))
		}
		return otlploghttp.New(ctx, opts...)
	}
	opts := []otlploggrpc.Option{otlploggrpc.WithEndpointURL(c.DecisionLogOTLPEndpoint), otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false})}
	if headers != nil {
		opts = append(opts, otlploggrpc.WithHeaders(headers))
	}
	if tlsConf != nil {
		opts = append(opts, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tlsConf)))
	}
	return otlploggrpc.New(ctx, opts...)
}

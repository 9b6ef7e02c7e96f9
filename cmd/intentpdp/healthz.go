package main

import (
	"net/http"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// healthzPath answers 200 while the gRPC health of the server ("") is
// SERVING and 503 otherwise, for load balancers that check over HTTP/1.1
// (HAProxy's option httpchk) and cannot speak gRPC health.
const healthzPath = "/healthz"

// withHealthz serves GET /healthz from health and everything else from h.
func withHealthz(health *grpcapi.Health, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+healthzPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		resp, err := health.Check(r.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("NOT_SERVING\n"))
			return
		}
		_, _ = w.Write([]byte("SERVING\n"))
	})
	mux.Handle("/", h)
	return mux
}

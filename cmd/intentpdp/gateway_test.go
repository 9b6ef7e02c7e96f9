package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServeRejectsBadGatewayConfig: a gateway config that does not load or
// validate stops serve before it listens, naming the problem.
func TestServeRejectsBadGatewayConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "absent.json"), "absent.json"},
		{"unknown field", write("typo.json", `{"rootes": []}`), "rootes"},
		{"invalid route", write("route.json", `{"routes": [{"path": "/a/{x}", "action": "a", "resource": {"type": "R", "id": "{y}"}}]}`), "{y} is not a parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := serve(context.Background(), append(slices.Clone(loopbackFlags), "--gateway-config", tt.path), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("serve = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

package authzen_test

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/server/authzen"
)

// getConfiguration fetches the discovery metadata with the given Host
// header.
func getConfiguration(t *testing.T, p *pdp, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.url+authzen.PathConfiguration, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestConfigurationIgnoresHost: a client choosing the Host header cannot
// make the metadata, which caches may share, point elsewhere.
func TestConfigurationIgnoresHost(t *testing.T) {
	t.Parallel()
	t.Run("listener address", func(t *testing.T) {
		t.Parallel()
		p := startPDP(t, "testdata/spec-search")
		code, body := getConfiguration(t, p, "evil.example")
		if code != http.StatusOK || strings.Contains(body, "evil.example") || !strings.Contains(body, `"policy_decision_point":"`+p.url+`"`) {
			t.Errorf("status %d, metadata %s; want %s, nothing of the Host header", code, body, p.url)
		}
	})
	t.Run("configured base URL", func(t *testing.T) {
		t.Parallel()
		p := startPDP(t, "testdata/spec-search", authzen.WithBaseURL("https://pdp.example.org/authz/"))
		code, body := getConfiguration(t, p, "evil.example")
		got := decode(t, strings.NewReader(body))
		want := map[string]any{
			"policy_decision_point":       "https://pdp.example.org/authz",
			"access_evaluation_endpoint":  "https://pdp.example.org/authz/access/v1/evaluation",
			"access_evaluations_endpoint": "https://pdp.example.org/authz/access/v1/evaluations",
			"search_subject_endpoint":     "https://pdp.example.org/authz/access/v1/search/subject",
			"search_resource_endpoint":    "https://pdp.example.org/authz/access/v1/search/resource",
			"search_action_endpoint":      "https://pdp.example.org/authz/access/v1/search/action",
		}
		if code != http.StatusOK || !reflect.DeepEqual(got, want) {
			t.Errorf("status %d, metadata %v, want %v", code, got, want)
		}
	})
}

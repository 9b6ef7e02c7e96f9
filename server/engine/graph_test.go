package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/intentpdp/intentpdp/"

// frontEnds are the packages that serve a wire protocol. Each decides
// through the engine; none may import another, and nothing they build on
// (the engine, the gateway mapping library, cedarvalue, telemetry, the
// decision log) may import any of them.
var frontEnds = []string{"server/grpcapi", "server/authzen", "server/extauthz", "server/forwardauth", "server/mcpgw"}

var libraries = []string{"server/engine", "server/identity", "server/gateway", "server/cedarvalue", "server/telemetry", "server/decisionlog", "policystore"}

// TestPackageGraph fails on any forbidden import edge, direct or not, of
// the production code (tests excluded).
func TestPackageGraph(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go list")
	}
	var pkgs []string
	for _, p := range append(append([]string{}, frontEnds...), libraries...) {
		pkgs = append(pkgs, module+p)
	}
	out, err := exec.Command("go", append([]string{"list", "-f", `{{.ImportPath}} {{join .Deps " "}}`}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		set := map[string]bool{}
		for _, d := range fields[1:] {
			set[strings.TrimPrefix(d, module)] = true
		}
		deps[strings.TrimPrefix(fields[0], module)] = set
	}
	for _, fe := range frontEnds {
		if !deps[fe]["server/engine"] {
			t.Errorf("%s does not decide through server/engine", fe)
		}
		for _, other := range frontEnds {
			if other != fe && deps[fe][other] {
				t.Errorf("front end %s imports front end %s", fe, other)
			}
		}
		for _, lib := range libraries {
			if deps[lib][fe] {
				t.Errorf("%s imports front end %s", lib, fe)
			}
		}
	}
	if deps["server/engine"]["server/gateway"] {
		t.Error("server/engine imports the gateway mapping library")
	}
}

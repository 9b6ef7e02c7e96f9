package mcpgw

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/server/engine"
)

// Config is the gateway's configuration file (JSON).
type Config struct {
	// Principal is the principal of every call, as a Cedar entity
	// reference (`Agent::"desktop"`), for an agent that reaches the
	// gateway over stdio and so carries no token. Empty: the principal is
	// the one the engine verifies from the bearer token.
	Principal string `json:"principal,omitempty"`
	// Upstreams are the MCP servers behind the gateway. With more than
	// one, each tool is offered as "<upstream>.<tool>" (and decided as
	// Action::"<upstream>.<tool>"); with one, under its own name.
	Upstreams []UpstreamConfig `json:"upstreams"`
}

// UpstreamConfig is one MCP server behind the gateway: a Streamable HTTP
// URL or a command speaking MCP over stdio.
type UpstreamConfig struct {
	// Name is the upstream's name: the id of its MCPServer entity.
	Name    string   `json:"name"`
	URL     string   `json:"url,omitempty"`
	Command []string `json:"command,omitempty"`
	// Env is added to the gateway's environment for Command (an
	// upstream's credentials, say).
	Env map[string]string `json:"env,omitempty"`
	// Resources maps a tool's name to the resource its calls are decided
	// on, built from its arguments; tools not listed are decided on
	// MCPServer::"<name>".
	Resources map[string]ResourceMapping `json:"resources,omitempty"`
	// Prompts is whether the upstream's prompts are offered to the agent:
	// "off" (the default) or "decide", each prompts/get then decided as
	// Action::"get_prompt".
	Prompts string `json:"prompts,omitempty"`
}

// Values of UpstreamConfig.Prompts.
const (
	PromptsOff    = "off"
	PromptsDecide = "decide"
)

// ResourceMapping builds a call's resource from its arguments: ID is a
// template whose {name} parts are replaced by the string (or whole
// number) argument of that name, e.g. {"type": "Repository", "id":
// "{owner}/{repo}"}.
type ResourceMapping struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

var (
	upstreamName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	placeholder  = regexp.MustCompile(`\{([^{}]+)\}`)
)

// Validate checks the configuration whole, so a gateway never starts on
// a part of it.
func (c *Config) Validate() error {
	if c.Principal != "" {
		if _, err := parseEntity(c.Principal); err != nil {
			return fmt.Errorf("principal: %w", err)
		}
	}
	if len(c.Upstreams) == 0 {
		return errors.New("no upstream configured")
	}
	seen := map[string]bool{}
	for _, u := range c.Upstreams {
		if !upstreamName.MatchString(u.Name) {
			return fmt.Errorf("upstream name %q: want 1 to 64 letters, digits, '_' or '-'", u.Name)
		}
		if seen[u.Name] {
			return fmt.Errorf("upstream %q is configured twice", u.Name)
		}
		seen[u.Name] = true
		if (u.URL == "") == (len(u.Command) == 0) {
			return fmt.Errorf("upstream %q: set exactly one of url and command", u.Name)
		}
		if u.Prompts != "" && u.Prompts != PromptsOff && u.Prompts != PromptsDecide {
			return fmt.Errorf("upstream %q: prompts %q: want %q or %q", u.Name, u.Prompts, PromptsOff, PromptsDecide)
		}
		for tool, m := range u.Resources {
			if m.Type == "" || m.ID == "" {
				return fmt.Errorf("upstream %q, tool %q: a resource mapping needs a type and an id", u.Name, tool)
			}
		}
	}
	return nil
}

func (c *Config) prefix(upstream string) string {
	if len(c.Upstreams) > 1 {
		return upstream + "."
	}
	return ""
}

// resolve builds the resource of a call from its arguments; an argument
// the template names but the call lacks denies the call.
func (m ResourceMapping) resolve(input types.RecordMap) (types.EntityUID, error) {
	var missing error
	id := placeholder.ReplaceAllStringFunc(m.ID, func(p string) string {
		name := strings.Trim(p, "{}")
		switch v := input[types.String(name)].(type) {
		case types.String:
			return string(v)
		case types.Long:
			return v.String()
		default:
			missing = engine.Invalid("the resource of this tool is built from argument %q, which is missing or not a string", name)
			return ""
		}
	})
	if missing != nil {
		return types.EntityUID{}, missing
	}
	return types.NewEntityUID(types.EntityType(m.Type), types.String(id)), nil
}

// parseEntity reads a Cedar entity reference such as Agent::"desktop".
func parseEntity(s string) (types.EntityUID, error) {
	var uid types.EntityUID
	if err := uid.UnmarshalCedar([]byte(s)); err != nil {
		return types.EntityUID{}, fmt.Errorf("%q is not an entity reference like Agent::\"id\": %v", s, err)
	}
	return uid, nil
}

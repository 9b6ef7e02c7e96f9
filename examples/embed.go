// Package examples embeds the example bundles, so that the intentpdp binary
// serves one with no configuration at all.
package examples

import (
	"embed"
	"io/fs"
)

//go:embed agents
var bundles embed.FS

// Agents is the example bundle in examples/agents: AI agents in teams acting
// on a project hierarchy through read, write and deploy tools.
func Agents() fs.FS {
	sub, err := fs.Sub(bundles, "agents")
	if err != nil {
		panic(err) // the embedded path is fixed at build time
	}
	return sub
}

package policystore

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
)

// Policy files: Cedar's text syntax, and Cedar's JSON policy-set format.
const (
	policySuffix     = ".cedar"
	policyJSONSuffix = ".cedar.json"
)

// parsedPolicy is a policy with its id and where it was found, so that
// later problems (duplicate ids, schema validation) name its file.
type parsedPolicy struct {
	id     cedar.PolicyID
	policy *cedar.Policy
	file   string
	pos    *cedar.Position // nil for JSON policies, which have no position
}

// where names a policy's place in the bundle for messages.
func (p parsedPolicy) where() string {
	if p.pos == nil {
		return p.file
	}
	return fmt.Sprintf("%s:%d:%d", p.file, p.pos.Line, p.pos.Column)
}

// policies parses every *.cedar and *.cedar.json file, in path order, and
// returns the policies sorted by id. A policy's id is its @id annotation,
// else, in a .cedar file, its file and position (stable while the file is
// unchanged), and in a .cedar.json file its key in staticPolicies. Ids are
// unique across the bundle, whatever the format.
func (c *compiler) policies() []parsedPolicy {
	byID := map[cedar.PolicyID]parsedPolicy{}
	for _, file := range c.bundle.paths() {
		if strings.HasPrefix(file, TestsDir) {
			continue
		}
		var list []parsedPolicy
		switch {
		case strings.HasSuffix(file, policyJSONSuffix):
			list = c.jsonPolicies(file)
		case strings.HasSuffix(file, policySuffix):
			list = c.textPolicies(file)
		}
		for _, p := range list {
			if annotated, ok := p.policy.Annotations()["id"]; ok {
				p.id = cedar.PolicyID(annotated)
			}
			if first, dup := byID[p.id]; dup {
				c.fail(p.file, p.pos, "duplicate policy id %q (first at %s)", p.id, first.where())
				continue
			}
			byID[p.id] = p
		}
	}
	return slices.SortedFunc(maps.Values(byID), func(a, b parsedPolicy) int { return cmp.Compare(a.id, b.id) })
}

// textPolicies parses a .cedar file; ids are positions until policies
// replaces them with @id annotations.
func (c *compiler) textPolicies(file string) []parsedPolicy {
	list, err := cedar.NewPolicyListFromBytes(file, c.bundle.Files[file])
	if err != nil {
		c.parseFailure(file, err)
		return nil
	}
	out := make([]parsedPolicy, len(list))
	for i, p := range list {
		pos := p.Position()
		out[i] = parsedPolicy{policy: p, file: file, pos: &pos}
		out[i].id = cedar.PolicyID(out[i].where())
	}
	return out
}

// jsonPolicies parses a .cedar.json file: a Cedar JSON policy set,
// {"staticPolicies": {"ID": POLICY, …}}, with "templates" and
// "templateLinks" absent or empty, since cedar-go cannot link templates.
// Unknown members are refused. Ids are the staticPolicies keys until
// policies replaces them with @id annotations; keys are taken in sorted
// order, so that duplicate ids are reported the same way every time.
func (c *compiler) jsonPolicies(file string) []parsedPolicy {
	var set cedar.PolicySet
	if err := set.UnmarshalJSON(c.bundle.Files[file]); err != nil {
		c.fail(file, nil, "parse policies: %v", err)
		return nil
	}
	m := set.Map()
	out := make([]parsedPolicy, 0, len(m))
	for _, key := range slices.Sorted(maps.Keys(m)) {
		out = append(out, parsedPolicy{id: key, policy: m[key], file: file})
	}
	return out
}

// parseFailure records a Cedar parse error at the position it names.
func (c *compiler) parseFailure(file string, err error) {
	msg := err.Error()
	m := parsePosition.FindStringSubmatchIndex(msg)
	if m == nil {
		c.fail(file, nil, "%s", msg)
		return
	}
	line, _ := strconv.Atoi(msg[m[2]:m[3]])
	col, _ := strconv.Atoi(msg[m[4]:m[5]])
	c.fail(file, &cedar.Position{Line: line, Column: col}, "%s", strings.TrimSpace(msg[m[1]:]))
}

// parsePosition finds the position in cedar-go's parse errors, which name
// the input "<input>".
var parsePosition = regexp.MustCompile(`<input>:(\d+):(\d+)`)

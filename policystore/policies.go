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
	expast "github.com/cedar-policy/cedar-go/x/exp/ast"
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
// unique across the bundle, whatever the format: a policy whose id was
// found before is reported, after any parse failure.
func (c *compiler) policies() []parsedPolicy {
	var all []parsedPolicy
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
		for i := range list {
			for _, a := range (*expast.Policy)(list[i].policy.AST()).Annotations {
				if a.Key == "id" {
					list[i].id = cedar.PolicyID(a.Value)
				}
			}
		}
		all = append(all, list...)
	}
	return c.uniqueByID(all)
}

// uniqueByID sorts policies by id and reports, in the order found, each
// policy whose id an earlier one has. It sorts numbers rather than the
// policies themselves, and needs no map: for a million policies both
// cost more than the rest of this step.
func (c *compiler) uniqueByID(policies []parsedPolicy) []parsedPolicy {
	order := make([]int32, len(policies))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(policies[a].id, policies[b].id), cmp.Compare(a, b))
	})
	out := make([]parsedPolicy, 0, len(policies))
	type duplicate struct{ at, first int32 }
	var dups []duplicate
	first := int32(-1)
	for _, i := range order {
		if first >= 0 && policies[first].id == policies[i].id {
			dups = append(dups, duplicate{i, first})
			continue
		}
		first = i
		out = append(out, policies[i])
	}
	slices.SortFunc(dups, func(a, b duplicate) int { return cmp.Compare(a.at, b.at) })
	for _, d := range dups {
		p := policies[d.at]
		c.fail(p.file, p.pos, "duplicate policy id %q (first at %s)", p.id, policies[d.first].where())
	}
	return out
}

// textPolicies parses a .cedar file; ids are positions until policies
// replaces them with @id annotations. A large file is parsed in pieces of
// whole policies, one per core at a time: cedar-go tokenizes all of its
// input before parsing it, and the tokens of a whole file of 100,000
// policies take several times the memory of the policies they become.
// Each piece's positions are shifted to where it starts in the file, and
// only the first piece that fails is reported, as a parse of the whole
// file would report one error.
func (c *compiler) textPolicies(file string) []parsedPolicy {
	pieces := splitPolicies(c.bundle.Files[file], policyPiece)
	lists := make([][]parsedPolicy, len(pieces))
	errs := make([]error, len(pieces))
	spreadOverCores(len(pieces), 1, func(i int) {
		lists[i], errs[i] = parsePiece(file, pieces[i])
	})
	for i, err := range errs {
		if err != nil {
			c.parseFailure(file, pieces[i].line-1, err)
			return nil
		}
	}
	return slices.Concat(lists...)
}

// policyPiece is the size of the pieces textPolicies parses a file in.
// cedar-go appends a piece's tokens to a slice that grows by only a
// quarter at a time once it is large, so that large pieces allocate
// several times their tokens: over 100,000 policies (bench scenario
// p100k-e100k), pieces of 256 KiB allocated 780 MB of tokens, pieces of
// 4 KiB (a few dozen policies) 450 MB, garbage the collector pays for.
const policyPiece = 4 << 10

// piece is a run of whole policies of a file, starting at the beginning
// of line line (from 1), offset bytes into the file.
type piece struct {
	text         []byte
	line, offset int
}

func parsePiece(file string, pc piece) ([]parsedPolicy, error) {
	list, err := cedar.NewPolicyListFromBytes(file, pc.text)
	if err != nil {
		return nil, err
	}
	out := make([]parsedPolicy, len(list))
	for i, p := range list {
		at := &(*expast.Policy)(p.AST()).Position
		at.Line += pc.line - 1
		at.Offset += pc.offset
		pos := p.Position()
		out[i] = parsedPolicy{policy: p, file: file, pos: &pos}
		out[i].id = cedar.PolicyID(out[i].where())
	}
	return out, nil
}

// splitPolicies cuts Cedar policy text into pieces of at least size bytes
// (the last may be shorter), each ending with a line on which a policy's
// closing semicolon was the last thing outside comments. Cedar has no
// other semicolons outside string literals and comments, so each piece
// holds whole policies; text that does not parse stays in some piece
// and fails there.
func splitPolicies(text []byte, size int) []piece {
	var pieces []piece
	start, line, startLine := 0, 1, 1
	inString, inComment, afterPolicy := false, false, false
	for i := 0; i < len(text); i++ {
		switch ch := text[i]; {
		case inString:
			switch ch {
			case '\\':
				i++
			case '"':
				inString = false
			case '\n':
				line++
			}
			continue
		case ch == '\n':
			inComment = false
			line++
			if afterPolicy && i+1-start >= size {
				pieces = append(pieces, piece{text: text[start : i+1], line: startLine, offset: start})
				start, startLine = i+1, line
			}
		case inComment, ch == ' ', ch == '\t', ch == '\r':
		case ch == '/' && i+1 < len(text) && text[i+1] == '/':
			inComment = true
		case ch == '"':
			inString, afterPolicy = true, false
		default:
			afterPolicy = ch == ';'
		}
	}
	if start < len(text) || len(pieces) == 0 {
		pieces = append(pieces, piece{text: text[start:], line: startLine, offset: start})
	}
	return pieces
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

// parseFailure records a Cedar parse error at the position it names,
// lines further down the file than the parsed text started.
func (c *compiler) parseFailure(file string, lines int, err error) {
	msg := err.Error()
	m := parsePosition.FindStringSubmatchIndex(msg)
	if m == nil {
		c.fail(file, nil, "%s", msg)
		return
	}
	line, _ := strconv.Atoi(msg[m[2]:m[3]])
	col, _ := strconv.Atoi(msg[m[4]:m[5]])
	c.fail(file, &cedar.Position{Line: line + lines, Column: col}, "%s", strings.TrimSpace(msg[m[1]:]))
}

// parsePosition finds the position in cedar-go's parse errors, which name
// the input "<input>".
var parsePosition = regexp.MustCompile(`<input>:(\d+):(\d+)`)

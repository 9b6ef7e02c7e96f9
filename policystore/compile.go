package policystore

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	expast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
	exptypes "github.com/cedar-policy/cedar-go/x/exp/types"
)

// Well-known bundle file names.
const (
	ManifestFile = "manifest.json"
	EntitiesFile = "entities.json"
)

// Validation modes a manifest may ask for when the bundle has a schema.
const (
	ValidationStrict     = "strict"     // the default: Cedar's strict validation
	ValidationPermissive = "permissive" // Cedar's permissive validation
	ValidationOff        = "off"        // the schema only guides entity parsing
)

// Manifest is a bundle's optional manifest.json.
type Manifest struct {
	// Revision names the bundle; empty means a content hash.
	Revision string `json:"revision,omitempty"`
	// Validation is strict (default), permissive or off.
	Validation string `json:"validation,omitempty"`
}

// Problem is one thing wrong with a bundle, located where possible.
type Problem struct {
	File    string
	Line    int // 0 when unknown
	Column  int
	Message string
}

func (p Problem) String() string {
	switch {
	case p.File == "":
		return p.Message
	case p.Line == 0:
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	default:
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
	}
}

// ValidationError lists every problem that rejected a bundle.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid bundle: " + strings.Join(lines, "; ")
}

// compiler accumulates problems while a bundle is compiled, so that one
// activation reports everything wrong at once.
type compiler struct {
	bundle   *Bundle
	problems []Problem
}

func (c *compiler) fail(file string, pos *cedar.Position, format string, args ...any) {
	p := Problem{File: file, Message: fmt.Sprintf(format, args...)}
	if pos != nil {
		p.Line, p.Column = pos.Line, pos.Column
	}
	c.problems = append(c.problems, p)
}

// Compile parses and validates a bundle into an immutable Snapshot. It does
// not publish anything; see Store.Activate.
func Compile(b *Bundle) (*Snapshot, error) {
	c := &compiler{bundle: b}
	manifest := c.manifest()
	sch := c.schema()
	policies := c.policies()
	entities := c.entities(sch)
	if sch != nil && manifest.Validation != ValidationOff {
		c.validate(sch, manifest.Validation, policies, entities)
	}
	if len(c.problems) > 0 {
		return nil, &ValidationError{Problems: c.problems}
	}
	revision := manifest.Revision
	if revision == "" {
		revision = b.ContentHash()
	}
	return newSnapshot(revision, b.Source, policies, entities, sch), nil
}

func (c *compiler) manifest() Manifest {
	var m Manifest
	data, ok := c.bundle.Files[ManifestFile]
	if !ok {
		return m
	}
	if err := json.Unmarshal(data, &m); err != nil {
		c.fail(ManifestFile, nil, "%v", err)
	}
	switch m.Validation {
	case "", ValidationStrict, ValidationPermissive, ValidationOff:
	default:
		c.fail(ManifestFile, nil, "validation must be %q, %q or %q, not %q",
			ValidationStrict, ValidationPermissive, ValidationOff, m.Validation)
	}
	return m
}

// schema parses the bundle's schema, in Cedar or JSON syntax. A bundle has
// at most one.
func (c *compiler) schema() *resolved.Schema {
	files := append(c.bundle.pathsWithSuffix(".cedarschema"), c.bundle.pathsWithSuffix(".cedarschema.json")...)
	if len(files) == 0 {
		return nil
	}
	if len(files) > 1 {
		c.fail(files[1], nil, "a bundle has at most one schema; also found %s", files[0])
		return nil
	}
	file := files[0]
	var s schema.Schema
	s.SetFilename(file)
	var err error
	if strings.HasSuffix(file, ".json") {
		err = s.UnmarshalJSON(c.bundle.Files[file])
	} else {
		err = s.UnmarshalCedar(c.bundle.Files[file])
	}
	if err != nil {
		c.fail(file, nil, "parse schema: %v", err)
		return nil
	}
	rs, err := s.Resolve()
	if err != nil {
		c.fail(file, nil, "resolve schema: %v", err)
		return nil
	}
	return rs
}

// policies parses every *.cedar file. A policy's id is its @id annotation,
// else its file and position, which are stable while the file is unchanged.
func (c *compiler) policies() map[cedar.PolicyID]*cedar.Policy {
	out := map[cedar.PolicyID]*cedar.Policy{}
	where := map[cedar.PolicyID]string{}
	for _, file := range c.bundle.pathsWithSuffix(".cedar") {
		list, err := cedar.NewPolicyListFromBytes(file, c.bundle.Files[file])
		if err != nil {
			c.fail(file, nil, "parse policies: %v", err)
			continue
		}
		for _, p := range list {
			pos := p.Position()
			id := cedar.PolicyID(fmt.Sprintf("%s:%d:%d", file, pos.Line, pos.Column))
			if annotated, ok := p.Annotations()["id"]; ok {
				id = cedar.PolicyID(annotated)
			}
			if first, dup := where[id]; dup {
				c.fail(file, &pos, "duplicate policy id %q (first at %s)", id, first)
				continue
			}
			where[id] = fmt.Sprintf("%s:%d:%d", file, pos.Line, pos.Column)
			out[id] = p
		}
	}
	return out
}

// entities parses entities.json, guided by the schema when there is one, and
// adds the action entities the schema declares (the action groups).
func (c *compiler) entities(sch *resolved.Schema) types.EntityMap {
	entities := types.EntityMap{}
	if data, ok := c.bundle.Files[EntitiesFile]; ok {
		var err error
		if sch != nil {
			var em exptypes.EntityMap
			err = em.UnmarshalJSONWithSchema(data, sch)
			entities = types.EntityMap(em)
		} else {
			err = entities.UnmarshalJSON(data)
		}
		if err != nil {
			c.fail(EntitiesFile, nil, "%v", err)
			return types.EntityMap{}
		}
	}
	if sch != nil {
		for uid, action := range sch.Actions {
			if _, defined := entities[uid]; !defined {
				entities[uid] = action.Entity
			}
		}
	}
	return entities
}

func (c *compiler) validate(sch *resolved.Schema, mode string, policies map[cedar.PolicyID]*cedar.Policy, entities types.EntityMap) {
	opts := []validate.Option{validate.WithStrict()}
	if mode == ValidationPermissive {
		opts = []validate.Option{validate.WithPermissive()}
	}
	v := validate.New(sch, opts...)
	for _, id := range slices.Sorted(maps.Keys(policies)) {
		p := policies[id]
		if err := v.Policy(string(id), (*expast.Policy)(p.AST())); err != nil {
			pos := p.Position()
			for _, e := range unjoin(err) {
				c.fail(pos.Filename, &pos, "policy %q does not validate: %v", id, e)
			}
		}
	}
	uids := slices.SortedFunc(maps.Keys(entities), func(a, b types.EntityUID) int {
		return strings.Compare(a.String(), b.String())
	})
	for _, uid := range uids {
		if err := v.Entity(entities[uid]); err != nil {
			c.fail(EntitiesFile, nil, "entity %s does not conform to the schema: %v", uid, err)
		}
	}
}

// unjoin splits an errors.Join result so that each problem gets its own line.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

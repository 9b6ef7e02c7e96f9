package policystore

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
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
	// AuthoritativeTypes are the entity types whose entities only the
	// bundle defines: a request entity of one of these types is ignored
	// (and reported), or refused in reject mode, even when the bundle has no
	// entity with its UID. A request then cannot make up a task, a secret or
	// a resource placed under a bundle project. Action entities are always
	// the bundle's and need not be listed.
	//
	// When the field is absent and the bundle has a schema, every entity type
	// of which entities.json defines at least one entity is authoritative,
	// so that a bundle that owns a kind of entity owns all of them; types
	// the bundle defines no entities of stay open to the request. An explicit
	// list, even an empty one, replaces that default. Without a schema and
	// without the field, no type is authoritative: the bundle is only
	// authoritative for the entities it defines. With a schema every listed
	// name must be an entity type of the schema.
	AuthoritativeTypes *[]string `json:"authoritative_types,omitempty"`
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
	c.checkAuthoritativeTypes(manifest, sch)
	// Policies and entities parse independently: do both at once.
	pc := &compiler{bundle: b}
	parsed := make(chan map[cedar.PolicyID]*cedar.Policy)
	go func() { parsed <- pc.policies() }()
	ec := &compiler{bundle: b}
	entities := ec.entities(sch)
	policies := <-parsed
	c.problems = slices.Concat(c.problems, pc.problems, ec.problems)
	if sch != nil && manifest.Validation != ValidationOff {
		c.validate(sch, manifest.Validation, policies, entities)
	}
	if len(c.problems) > 0 {
		return nil, &ValidationError{Problems: c.problems}
	}
	hash := b.ContentHash()
	revision := manifest.Revision
	if revision == "" {
		revision = hash
	}
	snap := newSnapshot(revision, b.Source, policies, entities, sch)
	snap.contentHash = hash
	snap.authoritative = authoritativeTypes(manifest, sch, entities)
	return snap, nil
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

// checkAuthoritativeTypes reports listed names that are not entity types:
// with a schema, names the schema does not declare; without one, names that
// are not Cedar entity type names.
func (c *compiler) checkAuthoritativeTypes(m Manifest, sch *resolved.Schema) {
	if m.AuthoritativeTypes == nil {
		return
	}
	for _, name := range *m.AuthoritativeTypes {
		t := types.EntityType(name)
		switch {
		case !entityTypeName.MatchString(name):
			c.fail(ManifestFile, nil, "authoritative_types: %q is not an entity type name", name)
		case isActionType(t):
			c.fail(ManifestFile, nil, "authoritative_types: %q: action entities always come from the bundle; do not list them", name)
		case sch != nil && !schemaDeclares(sch, t):
			c.fail(ManifestFile, nil, "authoritative_types: the schema declares no entity type %q", name)
		}
	}
}

// entityTypeName matches a Cedar entity type: identifiers joined by "::".
var entityTypeName = regexp.MustCompile(`^[_a-zA-Z][_a-zA-Z0-9]*(::[_a-zA-Z][_a-zA-Z0-9]*)*$`)

func schemaDeclares(sch *resolved.Schema, t types.EntityType) bool {
	if _, ok := sch.Entities[t]; ok {
		return true
	}
	_, ok := sch.Enums[t]
	return ok
}

// authoritativeTypes resolves the manifest's authoritative_types, or its
// default (see Manifest), into a set; nil when no type is authoritative.
func authoritativeTypes(m Manifest, sch *resolved.Schema, entities types.EntityMap) map[types.EntityType]bool {
	out := map[types.EntityType]bool{}
	switch {
	case m.AuthoritativeTypes != nil:
		for _, name := range *m.AuthoritativeTypes {
			out[types.EntityType(name)] = true
		}
	case sch != nil:
		for uid := range entities {
			if !isActionType(uid.Type) {
				out[uid.Type] = true
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
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
			c.parseFailure(file, err)
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

// entities parses entities.json one entity at a time, guided by the schema
// when there is one, so that a problem names the entity; then it adds the
// action entities the schema declares (the action groups).
func (c *compiler) entities(sch *resolved.Schema) types.EntityMap {
	entities := types.EntityMap{}
	if data, ok := c.bundle.Files[EntitiesFile]; ok {
		var raw []json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			c.fail(EntitiesFile, nil, "%v", err)
			return entities
		}
		for i, r := range raw {
			e, err := parseEntity(r, sch)
			if err != nil {
				c.fail(EntitiesFile, nil, "entity [%d] %s: %v", i, e.UID, err)
				continue
			}
			if _, dup := entities[e.UID]; dup {
				c.fail(EntitiesFile, nil, "entity [%d]: duplicate entity %s", i, e.UID)
			}
			entities[e.UID] = e
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

// parseEntity parses one entity; on error it still returns the entity's uid
// where it could be read, for the message.
func parseEntity(raw []byte, sch *resolved.Schema) (types.Entity, error) {
	if sch == nil {
		var e types.Entity
		err := e.UnmarshalJSON(raw)
		return e, err
	}
	var e exptypes.Entity
	if err := e.UnmarshalJSONWithSchema(raw, sch); err != nil {
		var plain types.Entity
		_ = plain.UnmarshalJSON(raw)
		return plain, err
	}
	return types.Entity(e), nil
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
	uids := slices.SortedFunc(maps.Keys(entities), CompareUIDs)
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

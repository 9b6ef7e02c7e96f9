package policystore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	expast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
	exptypes "github.com/cedar-policy/cedar-go/x/exp/types"
)

// EntitiesFile holds a bundle's optional entities, in Cedar's entity JSON
// format.
const EntitiesFile = "entities.json"

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
	m, problems := readManifest(b)
	return compile(b, m, problems)
}

// compile is Compile with the bundle's manifest already read; problems are
// those found reading it, reported with the rest.
func compile(b *Bundle, m Manifest, problems []Problem) (*Snapshot, error) {
	c := &compiler{bundle: b, problems: problems}
	sch := c.schema()
	c.problems = append(c.problems, m.check(sch)...)
	// Policies and entities parse independently: do both at once.
	pc := &compiler{bundle: b}
	parsed := make(chan []parsedPolicy)
	go func() { parsed <- pc.policies() }()
	ec := &compiler{bundle: b}
	entities, builder := ec.entities(sch)
	policies := <-parsed
	c.problems = slices.Concat(c.problems, pc.problems, ec.problems)
	if sch != nil && m.Validation != ValidationOff {
		c.validate(sch, m.Validation, policies, entities)
	}
	if len(c.problems) > 0 {
		return nil, &ValidationError{Problems: c.problems}
	}
	hash := b.ContentHash()
	revision := m.Revision
	if revision == "" {
		revision = hash
	}
	ids, list := make([]cedar.PolicyID, len(policies)), make([]*cedar.Policy, len(policies))
	for i, p := range policies {
		ids[i], list[i] = p.id, p.policy
	}
	store, err := builder.finish()
	if err != nil {
		return nil, &ValidationError{Problems: []Problem{{File: EntitiesFile, Message: err.Error()}}}
	}
	snap := buildSnapshot(revision, b.Source, ids, list, store, sch)
	snap.contentHash = hash
	snap.sequence = m.Sequence
	snap.authoritative = m.authoritative(sch, entities)
	return snap, nil
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

// entities reads entities.json into a builder of the snapshot's entity
// store. Without a schema, readEntities decodes it straight into the
// builder; with one, cedarEntities decodes it, and the entities are
// returned too, for validation.
func (c *compiler) entities(sch *resolved.Schema) (types.EntityMap, *storeBuilder) {
	if data, ok := c.bundle.Files[EntitiesFile]; ok && sch == nil {
		b := newStoreBuilder(bytes.Count(data, []byte(`"uid"`))) // about one per entity
		if problems, ok := readEntities(data, b); ok {
			c.problems = append(c.problems, problems...)
			return nil, b
		}
	}
	entities := c.cedarEntities(sch)
	b := newStoreBuilder(len(entities))
	for _, e := range entities {
		b.add(e)
	}
	return entities, b
}

// cedarEntities parses entities.json with cedar-go one entity at a time,
// guided by the schema when there is one, so that a problem names the
// entity; then it adds the action entities the schema declares (the
// action groups).
func (c *compiler) cedarEntities(sch *resolved.Schema) types.EntityMap {
	entities := types.EntityMap{}
	if data, ok := c.bundle.Files[EntitiesFile]; ok {
		var raw []json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			c.fail(EntitiesFile, nil, "%v", err)
			return entities
		}
		parsed, errs := parseEntities(raw, sch)
		entities = make(types.EntityMap, len(raw))
		for i, e := range parsed {
			if errs[i] != nil {
				c.problems = append(c.problems, entityProblem(i, e.UID, errs[i]))
				continue
			}
			if _, dup := entities[e.UID]; dup {
				c.problems = append(c.problems, duplicateEntity(i, e.UID))
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

// parseEntities parses raw's entities, in runs spread over the cores.
func parseEntities(raw []json.RawMessage, sch *resolved.Schema) ([]types.Entity, []error) {
	parsed, errs := make([]types.Entity, len(raw)), make([]error, len(raw))
	spreadOverCores(len(raw), 1024, func(i int) {
		parsed[i], errs[i] = parseEntity(raw[i], sch)
	})
	return parsed, errs
}

// spreadOverCores calls do(i) for each i from 0 to n-1, at most one
// goroutine per core, each taking the next run of consecutive i's while
// any are left; it returns when all are done.
func spreadOverCores(n, run int, do func(i int)) {
	var next atomic.Int64
	take := func() int { return int(next.Add(int64(run))) - run }
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (n+run-1)/run) {
		wg.Go(func() {
			for start := take(); start < n; start = take() {
				for i := start; i < min(start+run, n); i++ {
					do(i)
				}
			}
		})
	}
	wg.Wait()
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

func (c *compiler) validate(sch *resolved.Schema, mode string, policies []parsedPolicy, entities types.EntityMap) {
	opts := []validate.Option{validate.WithStrict()}
	if mode == ValidationPermissive {
		opts = []validate.Option{validate.WithPermissive()}
	}
	v := validate.New(sch, opts...)
	for _, p := range policies {
		if err := v.Policy(string(p.id), (*expast.Policy)(p.policy.AST())); err != nil {
			for _, e := range unjoin(err) {
				c.fail(p.file, p.pos, "policy %q does not validate: %v", p.id, e)
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

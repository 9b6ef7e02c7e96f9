package policystore

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// ManifestFile is a bundle's optional manifest (see Manifest).
const ManifestFile = "manifest.json"

// Validation modes a manifest may ask for when the bundle has a schema.
const (
	ValidationStrict     = "strict"     // the default: Cedar's strict validation
	ValidationPermissive = "permissive" // Cedar's permissive validation
	ValidationOff        = "off"        // the schema only guides entity parsing
)

// Manifest is a bundle's optional manifest.json: what names, validates,
// orders and seals the bundle. A bundle without one has the zero Manifest.
// Keys it does not know are ignored when reading and kept by Seal.
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
	// Sequence orders bundles for anti-rollback: a bundle whose sequence is
	// lower than the active one's is refused. Absent means 0.
	Sequence int64 `json:"sequence,omitempty"`
	// Files maps every file of the bundle except manifest.json and
	// signature.json to the hex SHA-256 of its content (see Seal). When
	// present, the bundle's files must match it exactly.
	Files map[string]string `json:"files,omitempty"`
}

// readManifest parses b's manifest.json. It is parsed once per activation:
// Store.build reads it and hands it to the signature, rollback and compile
// steps. A manifest that is not valid JSON of this shape is a problem, and
// the zero Manifest is returned with it.
func readManifest(b *Bundle) (Manifest, []Problem) {
	var m Manifest
	data, ok := b.Files[ManifestFile]
	if !ok {
		return m, nil
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, []Problem{manifestProblem("%v", err)}
	}
	return m, nil
}

// check reports the manifest's fields that make no sense for the bundle:
// an unknown validation mode, and authoritative_types names that are not
// entity types (with a schema, names the schema does not declare; without
// one, names that are not Cedar entity type names). sch may be nil.
func (m Manifest) check(sch *resolved.Schema) []Problem {
	var problems []Problem
	switch m.Validation {
	case "", ValidationStrict, ValidationPermissive, ValidationOff:
	default:
		problems = append(problems, manifestProblem("validation must be %q, %q or %q, not %q",
			ValidationStrict, ValidationPermissive, ValidationOff, m.Validation))
	}
	if m.AuthoritativeTypes == nil {
		return problems
	}
	for _, name := range *m.AuthoritativeTypes {
		t := types.EntityType(name)
		switch {
		case !entityTypeName.MatchString(name):
			problems = append(problems, manifestProblem("authoritative_types: %q is not an entity type name", name))
		case isActionType(t):
			problems = append(problems, manifestProblem("authoritative_types: %q: action entities always come from the bundle; do not list them", name))
		case sch != nil && !schemaDeclares(sch, t):
			problems = append(problems, manifestProblem("authoritative_types: the schema declares no entity type %q", name))
		}
	}
	return problems
}

// manifestProblem is how every problem with the manifest is reported.
func manifestProblem(format string, args ...any) Problem {
	return Problem{File: ManifestFile, Message: fmt.Sprintf(format, args...)}
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

// authoritative resolves AuthoritativeTypes, or its default (see
// Manifest), into a set; nil when no type is authoritative.
func (m Manifest) authoritative(sch *resolved.Schema, entities types.EntityMap) map[types.EntityType]bool {
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

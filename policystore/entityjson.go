package policystore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json/jsontext"
)

// Decoding entities.json with cedar-go builds a types.Entity (a parent set
// and an attribute map of small objects) for each entity, which the entity
// store then re-encodes and drops: most of an activation's allocations. The
// entities of a bundle without a schema are read instead by entityReader,
// straight into the store's binary form. It reads a narrow, common subset
// of Cedar's entity JSON, in which it decodes exactly what cedar-go does:
// each entity an object of "uid", "parents", "attrs" and optionally "tags",
// UIDs as {"type": …, "id": …}, values strings, integers, booleans, arrays
// and objects, strings without escapes. Any entity outside that subset is
// handed to cedar-go, which decides, so that what is accepted and refused,
// and every message, stays cedar-go's.

// readEntities decodes data, the content of entities.json, into b; bad
// entities are reported with their index in the list. It returns false
// when data is not a JSON array it can split into entities: the caller
// then drops b and decodes data with cedar-go, which says what is wrong.
func readEntities(data []byte, b *storeBuilder) (problems []Problem, ok bool) {
	r := entityReader{in: data, types: map[string]types.EntityType{}}
	i := -1 // the index of the entity being read
	ok = r.items('[', ']', func() bool {
		i++
		start := r.at
		e, fast := r.entity()
		if fast {
			if !b.addEncoded(e.uid, e.parents, e.attrs, e.tags) {
				problems = append(problems, duplicateEntity(i, e.uid))
			}
			return true
		}
		r.at = start
		end, ok := r.skipValue()
		if !ok {
			return false
		}
		ent, err := parseEntity(data[start:end], nil)
		switch {
		case err != nil:
			problems = append(problems, entityProblem(i, ent.UID, err))
		case !b.add(ent):
			problems = append(problems, duplicateEntity(i, ent.UID))
		}
		return true
	})
	if r.ws(); !ok || r.at != len(data) {
		return nil, false
	}
	return problems, true
}

// entityProblem reports the entity at index i of entities.json, which
// cedar-go refused.
func entityProblem(i int, uid types.EntityUID, err error) Problem {
	return Problem{File: EntitiesFile, Message: fmt.Sprintf("entity [%d] %s: %v", i, uid, err)}
}

// duplicateEntity reports the entity at index i of entities.json, defined
// before.
func duplicateEntity(i int, uid types.EntityUID) Problem {
	return Problem{File: EntitiesFile, Message: fmt.Sprintf("entity [%d]: duplicate entity %s", i, uid)}
}

// entityReader reads entity JSON from in, at at. Its methods return false
// for anything outside the subset it decodes, leaving at anywhere.
type entityReader struct {
	in []byte
	at int
	// types holds the entity types already found valid.
	types map[string]types.EntityType
	// keys is a stack of the member names of the records being read.
	keys [][]byte
	// e is the entity being read; its slices are reused.
	e decodedEntity
}

type decodedEntity struct {
	uid         types.EntityUID
	parents     []types.EntityUID
	attrs, tags []byte // binary form, empty when there are none
	// Which members were read: each may appear once.
	hasUID, hasParents, hasAttrs, hasTags bool
}

// maxDepth bounds the nesting of values read here; deeper ones are left
// to cedar-go.
const maxDepth = 32

// maxRecordMembers bounds the members of a record read here, whose names
// are checked for duplicates pairwise; larger ones are left to cedar-go.
const maxRecordMembers = 64

// entity reads one entity into r.e.
func (r *entityReader) entity() (*decodedEntity, bool) {
	e := &r.e
	*e = decodedEntity{parents: e.parents[:0], attrs: e.attrs[:0], tags: e.tags[:0]}
	members := r.items('{', '}', func() bool {
		name, ok := r.str()
		if !ok || !r.colon() {
			return false
		}
		switch string(name) {
		case "uid":
			if e.hasUID {
				return false
			}
			e.hasUID = true
			e.uid, ok = r.uid()
		case "parents":
			if e.hasParents {
				return false
			}
			e.hasParents = true
			ok = r.parents()
		case "attrs":
			if e.hasAttrs {
				return false
			}
			e.hasAttrs = true
			e.attrs, ok = r.record(e.attrs, 0)
		case "tags":
			if e.hasTags {
				return false
			}
			e.hasTags = true
			e.tags, ok = r.record(e.tags, 0)
		default:
			return false
		}
		return ok
	})
	if !members || !e.hasUID || !e.hasParents || !e.hasAttrs {
		return nil, false
	}
	// An empty record is no record, as encode stores it.
	if len(e.attrs) == 2 && e.attrs[1] == 0 {
		e.attrs = e.attrs[:0]
	}
	if len(e.tags) == 2 && e.tags[1] == 0 {
		e.tags = e.tags[:0]
	}
	return e, true
}

// uid reads {"type": …, "id": …}, with a valid entity type.
func (r *entityReader) uid() (types.EntityUID, bool) {
	var typ, id []byte
	var hasType, hasID bool
	members := r.items('{', '}', func() bool {
		name, ok := r.str()
		if !ok || !r.colon() {
			return false
		}
		r.ws()
		switch {
		case string(name) == "type" && !hasType:
			typ, ok = r.str()
			hasType = true
		case string(name) == "id" && !hasID:
			id, ok = r.str()
			hasID = true
		default:
			ok = false
		}
		return ok
	})
	if !members || !hasType || !hasID {
		return types.EntityUID{}, false
	}
	t, ok := r.entityType(typ)
	return types.EntityUID{Type: t, ID: types.String(id)}, ok
}

// entityType validates a type as cedar-go does, once per type.
func (r *entityReader) entityType(name []byte) (types.EntityType, bool) {
	if t, ok := r.types[string(name)]; ok {
		return t, true
	}
	t, err := types.NewEntityType(string(name))
	if err != nil {
		return "", false
	}
	r.types[string(t)] = t
	return t, true
}

// parents reads an array of UIDs into r.e.parents.
func (r *entityReader) parents() bool {
	return r.items('[', ']', func() bool {
		uid, ok := r.uid()
		if ok {
			r.e.parents = append(r.e.parents, uid)
		}
		return ok
	})
}

// value appends the binary form (see valuecodec.go) of the next value.
func (r *entityReader) value(dst []byte, depth int) ([]byte, bool) {
	r.ws()
	if r.at == len(r.in) {
		return dst, false
	}
	switch c := r.in[r.at]; {
	case c == '"':
		s, ok := r.str()
		return appendString(append(dst, tagString), s), ok
	case c == 't':
		return append(dst, tagTrue), r.literal("true")
	case c == 'f':
		return append(dst, tagFalse), r.literal("false")
	case c == '-' || '0' <= c && c <= '9':
		n, ok := r.long()
		return binary.AppendVarint(append(dst, tagLong), n), ok
	case c == '[':
		return r.set(dst, depth+1)
	case c == '{':
		return r.record(dst, depth+1)
	}
	return dst, false
}

func (r *entityReader) set(dst []byte, depth int) ([]byte, bool) {
	if depth > maxDepth {
		return dst, false
	}
	dst = append(dst, tagSet)
	body, n := len(dst), 0
	ok := r.items('[', ']', func() bool {
		var ok bool
		dst, ok = r.value(dst, depth)
		n++
		return ok
	})
	if !ok {
		return dst, false
	}
	return insertCount(dst, body, n), true
}

// record reads an object as a record: member names unique, and none of
// the names that make an object an entity or extension value.
func (r *entityReader) record(dst []byte, depth int) ([]byte, bool) {
	if depth > maxDepth {
		return dst, false
	}
	dst = append(dst, tagRecord)
	body, n := len(dst), 0
	base := len(r.keys)
	defer func() { r.keys = r.keys[:base] }()
	ok := r.items('{', '}', func() bool {
		name, ok := r.str()
		if !ok || !r.colon() || n == maxRecordMembers ||
			string(name) == "__entity" || string(name) == "__extn" {
			return false
		}
		for _, k := range r.keys[base:] {
			if bytes.Equal(k, name) {
				return false
			}
		}
		r.keys = append(r.keys, name)
		dst, ok = r.value(appendString(dst, name), depth)
		n++
		return ok
	})
	if !ok {
		return dst, false
	}
	return insertCount(dst, body, n), true
}

// items reads a JSON array or object: open, elements separated by commas,
// close, with whitespace around each. item reads one element, starting
// after the whitespace; it returns false to stop the reading.
func (r *entityReader) items(open, close byte, item func() bool) bool {
	if r.ws(); !r.byte(open) {
		return false
	}
	if r.ws(); r.byte(close) {
		return true
	}
	for {
		if !item() {
			return false
		}
		if r.ws(); r.byte(close) {
			return true
		}
		if !r.byte(',') {
			return false
		}
		r.ws()
	}
}

// insertCount inserts n, as a uvarint, at body: where a set's or a
// record's elements start, now that their number is known.
func insertCount(dst []byte, body, n int) []byte {
	var count [binary.MaxVarintLen64]byte
	return slices.Insert(dst, body, count[:binary.PutUvarint(count[:], uint64(n))]...)
}

// str reads a string without escapes, valid UTF-8; it returns the bytes
// between the quotes.
func (r *entityReader) str() ([]byte, bool) {
	if !r.byte('"') {
		return nil, false
	}
	start, ascii := r.at, true
	for ; r.at < len(r.in); r.at++ {
		switch c := r.in[r.at]; {
		case c == '"':
			s := r.in[start:r.at]
			r.at++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// long reads an integer in JSON's syntax that is a Long: not "-0", not
// out of range, no fraction or exponent.
func (r *entityReader) long() (int64, bool) {
	neg := r.byte('-')
	start := r.at
	for r.at < len(r.in) && '0' <= r.in[r.at] && r.in[r.at] <= '9' {
		r.at++
	}
	digits := r.in[start:r.at]
	if len(digits) == 0 || len(digits) > 19 || len(digits) > 1 && digits[0] == '0' || neg && string(digits) == "0" {
		return 0, false
	}
	if r.at < len(r.in) {
		if c := r.in[r.at]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	var v uint64 // 19 digits do not overflow it
	for _, d := range digits {
		v = v*10 + uint64(d-'0')
	}
	switch {
	case neg && v <= math.MaxInt64+1:
		return int64(-v), true
	case !neg && v <= math.MaxInt64:
		return int64(v), true
	}
	return 0, false
}

func (r *entityReader) literal(word string) bool {
	if !bytes.HasPrefix(r.in[r.at:], []byte(word)) {
		return false
	}
	r.at += len(word)
	return true
}

// skipValue finds the end of the JSON value at r.at, which it must be
// valid: jsontext checks it as cedar-go's decoder will.
func (r *entityReader) skipValue() (int, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(r.in[r.at:]))
	if _, err := dec.ReadValue(); err != nil {
		return 0, false
	}
	r.at += int(dec.InputOffset())
	return r.at, true
}

func (r *entityReader) colon() bool {
	r.ws()
	return r.byte(':')
}

// byte consumes c if it is next.
func (r *entityReader) byte(c byte) bool {
	if r.at < len(r.in) && r.in[r.at] == c {
		r.at++
		return true
	}
	return false
}

// ws skips JSON whitespace.
func (r *entityReader) ws() {
	for r.at < len(r.in) {
		switch r.in[r.at] {
		case ' ', '\t', '\n', '\r':
			r.at++
		default:
			return
		}
	}
}

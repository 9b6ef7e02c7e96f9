package authzen

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// A body that a proxy in front of the PDP may read differently is refused
// before it is decoded: encoding/json keeps the last of duplicate member
// names and matches member names case-insensitively, while a WAF may keep
// the first, or match exactly. checkStrict refuses duplicate names (at any
// depth) and, where the API defines the members, a name that differs from
// one of them only in case ("Subject"). Names inside properties and
// context are the caller's own and may use any case. jsontext also refuses
// invalid UTF-8, which encoding/json would silently replace.

// shape is what the API defines at one place in a body: an object's
// members, an array's elements, or nothing (nil: any JSON value).
type shape struct {
	members map[string]*shape
	elem    *shape
}

var shapes sync.Map // reflect.Type → *shape

func shapeFor(t reflect.Type) *shape {
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s, _ := shapes.LoadOrStore(t, shapeOf(t))
	return s.(*shape)
}

// shapeOf follows the json tags of the wire types, which are not recursive.
func shapeOf(t reflect.Type) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		s := &shape{members: map[string]*shape{}}
		addMembers(s, t)
		return s
	case reflect.Slice, reflect.Array:
		if elem := shapeOf(t.Elem()); elem != nil {
			return &shape{elem: elem}
		}
	}
	return nil
}

func addMembers(s *shape, t reflect.Type) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			addMembers(s, f.Type)
		case f.IsExported():
			if name == "" {
				name = f.Name
			}
			s.members[name] = shapeOf(f.Type)
		}
	}
}

// checkStrict reads the first JSON value of body against the shape of v's
// type.
func checkStrict(body []byte, v any) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	return checkValue(dec, shapeFor(reflect.TypeOf(v)))
}

func checkValue(dec *jsontext.Decoder, s *shape) error {
	switch k := dec.PeekKind(); {
	case k == '{' && s != nil && s.members != nil:
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			name := tok.String()
			m, ok := s.members[name]
			if !ok {
				for known := range s.members {
					if strings.EqualFold(name, known) {
						return fmt.Errorf("member %q: member names are case-sensitive; want %q", name, known)
					}
				}
			}
			if err := checkValue(dec, m); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	case k == '[' && s != nil && s.elem != nil:
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != ']' {
			if err := checkValue(dec, s.elem); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	default:
		_, err := dec.ReadValue()
		return err
	}
}

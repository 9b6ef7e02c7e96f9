package policystore

import (
	"encoding/binary"

	"github.com/cedar-policy/cedar-go/types"
)

// An entity's attributes and tags are stored in a compact binary form when
// every value in them is a string, long, boolean, entity reference, set or
// record, which decodes in a fraction of the time cedar-go's JSON decoder
// takes; other values (the extension types) keep the JSON form. A binary
// record starts with tagRecord, a JSON one with '{', so the stored bytes
// say which they are.
const (
	tagString = 's'
	tagLong   = 'l'
	tagTrue   = 't'
	tagFalse  = 'f'
	tagEntity = 'e'
	tagSet    = 'S'
	tagRecord = 'r'
)

// appendValue appends v's binary form to b; false when v, or a value in
// it, has none.
func appendValue(b []byte, v types.Value) ([]byte, bool) {
	switch v := v.(type) {
	case types.String:
		return appendString(append(b, tagString), string(v)), true
	case types.Long:
		return binary.AppendVarint(append(b, tagLong), int64(v)), true
	case types.Boolean:
		if v {
			return append(b, tagTrue), true
		}
		return append(b, tagFalse), true
	case types.EntityUID:
		return appendString(appendString(append(b, tagEntity), string(v.Type)), string(v.ID)), true
	case types.Set:
		b = binary.AppendUvarint(append(b, tagSet), uint64(v.Len()))
		for e := range v.All() {
			var ok bool
			if b, ok = appendValue(b, e); !ok {
				return b, false
			}
		}
		return b, true
	case types.Record:
		b = binary.AppendUvarint(append(b, tagRecord), uint64(v.Len()))
		for k, e := range v.All() {
			b = appendString(b, string(k))
			var ok bool
			if b, ok = appendValue(b, e); !ok {
				return b, false
			}
		}
		return b, true
	}
	return b, false
}

func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// valueReader decodes what appendValue wrote, from a string: decoded
// strings are substrings of it, not copies.
type valueReader struct {
	data string
	at   int
}

func (r *valueReader) uvarint() uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		c := r.data[r.at]
		r.at++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
}

func (r *valueReader) string() string {
	n := int(r.uvarint())
	s := r.data[r.at : r.at+n]
	r.at += n
	return s
}

func (r *valueReader) value() types.Value {
	tag := r.data[r.at]
	r.at++
	switch tag {
	case tagString:
		return types.String(r.string())
	case tagLong:
		u := r.uvarint() // zig-zag, as binary.AppendVarint writes it
		return types.Long(int64(u>>1) ^ -int64(u&1))
	case tagTrue:
		return types.True
	case tagFalse:
		return types.False
	case tagEntity:
		t := r.string()
		return types.NewEntityUID(types.EntityType(t), types.String(r.string()))
	case tagSet:
		vs := make([]types.Value, r.uvarint())
		for i := range vs {
			vs[i] = r.value()
		}
		return types.NewSet(vs...)
	case tagRecord:
		return r.record()
	}
	panic("policystore: unknown stored value tag") // only appendValue writes these bytes
}

func (r *valueReader) record() types.Record {
	n := int(r.uvarint())
	m := make(types.RecordMap, n)
	for range n {
		k := r.string()
		m[types.String(k)] = r.value()
	}
	return types.NewRecord(m)
}

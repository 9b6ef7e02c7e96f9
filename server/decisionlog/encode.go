package decisionlog

import (
	"bytes"
	"encoding/json"
	"iter"
	"maps"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
)

// appendLine appends r's JSON line. It is written by hand rather than by
// reflection because encoding is most of the log's cost and runs on the
// same cores as the decisions. Context values use Cedar's JSON value form;
// the keys the PDP adds to the context (intent, now) are logged as their
// own fields instead.
//
// When encodeErr is set, the line carries it instead of the context and
// intent attributes that could not be encoded.
func appendLine(b []byte, r *Record, red *redactor, encodeErr string) ([]byte, error) {
	start := len(b)
	b = append(b, `{"decision_id":`...)
	b = appendString(b, r.DecisionID)
	if r.Shadow != nil {
		b = append(b, `,"kind":"shadow"`...)
	}
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.FrontEnd != "" {
		b = append(b, `,"front_end":`...)
		b = appendString(b, r.FrontEnd)
	}
	req := &r.Request
	b = append(b, `,"principal":`...)
	b = appendRef(b, req.Principal)
	// The intent is logged as its own field but redacted as what policies
	// see, context.intent: "intent", "intent.purpose", "intent.attributes.x".
	intentRed, whole := red.child(policystore.ContextIntent)
	if whole {
		intentRed = redactAll
	}
	b = append(b, `,"intent":{"action":`...)
	b = appendString(b, string(req.Action.ID))
	for _, f := range [...]struct{ k, v string }{{"purpose", req.Intent.Purpose}, {"task_id", req.Intent.TaskID}, {"tool", req.Intent.Tool}} {
		if f.v == "" {
			continue
		}
		b = append(b, ',', '"')
		b = append(b, f.k...)
		b = append(b, '"', ':')
		if _, whole := intentRed.child(types.String(f.k)); whole {
			f.v = Redacted
		}
		b = appendString(b, f.v)
	}
	b = append(b, `,"attributes":`...)
	var attrs, ctx fields = recordMap(req.Intent.Attributes), recordMap(req.Context)
	if encodeErr != "" {
		attrs, ctx = recordMap(nil), recordMap(nil)
	}
	var err error
	if attrRed, whole := intentRed.child("attributes"); whole {
		b = appendString(b, Redacted)
	} else if b, err = appendRecord(b, attrs, attrRed); err != nil {
		return nil, err
	}
	b = append(b, '}')
	if req.TaskState != "" {
		// What the grant store found for intent.task_id: live, expired,
		// revoked, unknown, not_yet_valid, exhausted or stale.
		b = append(b, `,"task_state":`...)
		b = appendString(b, req.TaskState)
	}
	b = append(b, `,"resource":`...)
	b = appendRef(b, req.Resource)
	b = append(b, `,"context":`...)
	if b, err = appendRecord(b, ctx, red); err != nil {
		return nil, err
	}
	b = append(b, `,"action":`...)
	b = appendRef(b, req.Action)
	if !req.Now.IsZero() {
		b = append(b, `,"now":"`...)
		b = req.Now.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if len(req.Entities) > 0 && encodeErr == "" {
		if b, err = appendEntities(b, req.Entities, red.entities); err != nil {
			return nil, err
		}
	}
	if encodeErr != "" {
		b = append(b, `,"encode_error":`...)
		b = appendString(b, encodeErr)
	}
	b = appendDecision(b, &r.Decision)
	if r.Shadow != nil {
		b = append(b, `,"shadow":{`...)
		b = appendDecisionFields(b, r.Shadow)
		b = append(b, '}')
	}
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, float64(r.Latency.Nanoseconds())/1e6, 'f', -1, 64)
	for _, f := range [...]struct{ k, v string }{{"trace_id", r.TraceID}, {"span_id", r.SpanID}} {
		if f.v != "" {
			b = append(b, ',', '"')
			b = append(b, f.k...)
			b = append(b, '"', ':')
			b = appendString(b, f.v)
		}
	}
	// A record that lost a field to redaction cannot be decided again:
	// replay counts it rather than guess (as it does a record with an
	// encode_error). Only a writer that redacts pays for the scan; a value
	// that merely reads "[REDACTED]" is marked too, which costs a replay,
	// never a wrong one.
	if red.redacts() && bytes.Contains(b[start:], redactedJSON) {
		b = append(b, `,"redacted":true`...)
	}
	return append(b, '}', '\n'), nil
}

var redactedJSON = []byte(`"` + Redacted + `"`)

// appendEntities appends the request's entities as Cedar's entity JSON
// array, every attribute and tag value replaced by Redacted when redact is
// set.
func appendEntities(b []byte, m types.EntityMap, redact bool) ([]byte, error) {
	red := (*redactor)(nil)
	if redact {
		red = redactAll
	}
	b = append(b, `,"entities":[`...)
	first := true
	var err error
	for uid, e := range m {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"uid":`...)
		b = appendRef(b, uid)
		b = append(b, `,"parents":[`...)
		i := 0
		for p := range e.Parents.All() {
			if i > 0 {
				b = append(b, ',')
			}
			i++
			b = appendRef(b, p)
		}
		b = append(b, `],"attrs":`...)
		if b, err = appendRecord(b, e.Attributes, red); err != nil {
			return nil, err
		}
		if e.Tags.Len() > 0 {
			b = append(b, `,"tags":`...)
			if b, err = appendRecord(b, e.Tags, red); err != nil {
				return nil, err
			}
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

func appendDecision(b []byte, d *policystore.Decision) []byte {
	return appendDecisionFields(append(b, ','), d)
}

// appendDecisionFields appends d's fields, without braces: the record's
// own decision and a shadow record's shadow decision are spelt alike.
func appendDecisionFields(b []byte, d *policystore.Decision) []byte {
	b = append(b, `"decision":"`...)
	b = append(b, d.Outcome()...)
	b = append(b, `","reasons":[`...)
	for i, rs := range d.Reasons {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"policy_id":`...)
		b = appendString(b, rs.PolicyID)
		if len(rs.Annotations) > 0 {
			b = append(b, `,"annotations":{`...)
			first := true
			for k, v := range rs.Annotations {
				if !first {
					b = append(b, ',')
				}
				first = false
				b = appendString(b, k)
				b = append(b, ':')
				b = appendString(b, v)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = append(b, `],"errors":[`...)
	for i, e := range d.Errors {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"policy_id":`...)
		b = appendString(b, e.PolicyID)
		b = append(b, `,"message":`...)
		b = appendString(b, e.Message)
		b = append(b, '}')
	}
	b = append(b, `],"policy_revision":`...)
	b = appendString(b, d.Revision)
	if len(d.WouldHave) > 0 {
		b = append(b, `,"would_have":[`...)
		for i, id := range d.WouldHave {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, id)
		}
		b = append(b, ']')
	}
	return b
}

func appendRef(b []byte, uid types.EntityUID) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, string(uid.Type))
	b = append(b, `,"id":`...)
	b = appendString(b, string(uid.ID))
	return append(b, '}')
}

// fields is a Cedar record, read without copying it.
type fields interface {
	All() iter.Seq2[types.String, types.Value]
}

type recordMap types.RecordMap

func (m recordMap) All() iter.Seq2[types.String, types.Value] { return maps.All(m) }

// appendRecord appends m as a JSON object, redacting what red names. Keys
// are not sorted: sorting cost more than the rest of the line.
func appendRecord(b []byte, m fields, red *redactor) ([]byte, error) {
	b = append(b, '{')
	first := true
	var err error
	for k, v := range m.All() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, string(k))
		b = append(b, ':')
		sub, whole := red.child(k)
		if whole {
			b = appendString(b, Redacted)
			continue
		}
		if b, err = appendValue(b, v, sub); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendValue appends v in Cedar's JSON value form: the common kinds
// directly, the rest (entity references, extension values) through their
// own MarshalJSON.
func appendValue(b []byte, v types.Value, red *redactor) ([]byte, error) {
	switch v := v.(type) {
	case types.String:
		return appendString(b, string(v)), nil
	case types.Long:
		return strconv.AppendInt(b, int64(v), 10), nil
	case types.Boolean:
		return strconv.AppendBool(b, bool(v)), nil
	case types.EntityUID:
		b = append(b, `{"__entity":`...)
		return append(appendRef(b, v), '}'), nil
	case types.Record:
		return appendRecord(b, v, red)
	case types.Set:
		b = append(b, '[')
		var err error
		i := 0
		for e := range v.All() {
			if i > 0 {
				b = append(b, ',')
			}
			i++
			// A path through a set applies to each of its elements.
			if b, err = appendValue(b, e, red); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, replacing invalid UTF-8 with
// U+FFFD and escaping what a JSON line must not hold raw.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

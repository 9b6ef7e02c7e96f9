// Package cedarvalue converts request values into Cedar values: the typed
// wire value of the gRPC API (pdpv1.Value) and JSON decoded with
// UseNumber (AuthZEN), with Cedar's JSON escapes for entity references and
// extension values. Every conversion of one request draws on one
// Converter, which enforces the value-count and nesting limits as it goes,
// so no oversized input is ever fully materialised. Numbers stay exact:
// nothing goes through floating point.
package cedarvalue

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/cedar-policy/cedar-go/types"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
)

// Converter converts the values of one request within its limits. It
// serves one request and is not safe for concurrent use.
type Converter struct {
	limits engine.Limits
	values int // values converted so far, against limits.MaxValues
}

// New returns a fresh converter for one request.
func New(l engine.Limits) *Converter { return &Converter{limits: l} }

// Limits are the limits the converter enforces.
func (c *Converter) Limits() engine.Limits { return c.limits }

// Count takes one value from the budget.
func (c *Converter) Count(what string) error {
	c.values++
	if c.values > c.limits.MaxValues {
		return fmt.Errorf("%w: %s: more than %d values in one request", engine.ErrLimitExceeded, what, c.limits.MaxValues)
	}
	return nil
}

// Nest checks that a value at depth may hold nested values.
func (c *Converter) Nest(what string, depth int) error {
	if depth > c.limits.MaxDepth {
		return engine.Invalid("%s: nested deeper than %d", what, c.limits.MaxDepth)
	}
	return nil
}

// EntityUID checks an entity type name and builds the UID.
func EntityUID(what, typ, id string) (types.EntityUID, error) {
	t, err := types.NewEntityType(typ)
	if err != nil {
		return types.EntityUID{}, engine.Invalid("%s: malformed entity type %q", what, typ)
	}
	return types.NewEntityUID(t, types.String(id)), nil
}

// elemName names the i-th element of a set in errors.
func elemName(what string, i int) string { return fmt.Sprintf("%s[%d]", what, i) }

// WireRecord converts the fields of a wire record at depth.
func (c *Converter) WireRecord(what string, in map[string]*pdpv1.Value, depth int) (types.RecordMap, error) {
	if err := c.Nest(what, depth); err != nil {
		return nil, err
	}
	out := make(types.RecordMap, len(in))
	for k, v := range in {
		// A scalar within the budget cannot fail: its name, made for
		// errors, is not needed.
		if val, ok := scalar(v); ok && c.values < c.limits.MaxValues {
			c.values++
			out[types.String(k)] = val
			continue
		}
		val, err := c.Wire(what+"."+k, v, depth)
		if err != nil {
			return nil, err
		}
		out[types.String(k)] = val
	}
	return out, nil
}

// scalar converts a boolean, long or string, the values whose conversion
// cannot fail.
func scalar(v *pdpv1.Value) (types.Value, bool) {
	switch k := v.GetKind().(type) {
	case *pdpv1.Value_BoolValue:
		return types.Boolean(k.BoolValue), true
	case *pdpv1.Value_LongValue:
		return types.Long(k.LongValue), true
	case *pdpv1.Value_StringValue:
		return types.String(k.StringValue), true
	}
	return nil, false
}

// Wire converts one wire value at depth.
func (c *Converter) Wire(what string, v *pdpv1.Value, depth int) (types.Value, error) {
	if err := c.Count(what); err != nil {
		return nil, err
	}
	if val, ok := scalar(v); ok {
		return val, nil
	}
	switch k := v.GetKind().(type) {
	case *pdpv1.Value_EntityValue:
		return EntityUID(what, k.EntityValue.GetType(), k.EntityValue.GetId())
	case *pdpv1.Value_SetValue:
		if err := c.Nest(what, depth+1); err != nil {
			return nil, err
		}
		vals := make([]types.Value, len(k.SetValue.GetValues()))
		for i, e := range k.SetValue.GetValues() {
			val, err := c.Wire(elemName(what, i), e, depth+1)
			if err != nil {
				return nil, err
			}
			vals[i] = val
		}
		return types.NewSet(vals...), nil
	case *pdpv1.Value_RecordValue:
		fields, err := c.WireRecord(what, k.RecordValue.GetFields(), depth+1)
		if err != nil {
			return nil, err
		}
		return types.NewRecord(fields), nil
	case *pdpv1.Value_ExtensionValue:
		return extension(what, k.ExtensionValue)
	default:
		return nil, engine.Invalid("%s: value has no kind", what)
	}
}

func extension(what string, call *pdpv1.ExtensionCall) (types.Value, error) {
	var (
		v   types.Value
		err error
	)
	switch call.GetFn() {
	case "datetime":
		v, err = types.ParseDatetime(call.GetArg())
	case "duration":
		v, err = types.ParseDuration(call.GetArg())
	case "decimal":
		v, err = types.ParseDecimal(call.GetArg())
	case "ip":
		v, err = types.ParseIPAddr(call.GetArg())
	default:
		return nil, engine.Invalid("%s: unknown extension function %q (want datetime, duration, decimal or ip)", what, call.GetFn())
	}
	if err != nil {
		return nil, engine.Invalid("%s: %s(%q): %v", what, call.GetFn(), call.GetArg(), err)
	}
	return v, nil
}

// JSONRecord converts a JSON object (decoded with UseNumber) at depth.
func (c *Converter) JSONRecord(what string, m map[string]any, depth int) (types.RecordMap, error) {
	if err := c.Nest(what, depth); err != nil {
		return nil, err
	}
	out := make(types.RecordMap, len(m))
	for k, v := range m {
		val, err := c.JSON(what+"."+k, v, depth)
		if err != nil {
			return nil, err
		}
		out[types.String(k)] = val
	}
	return out, nil
}

// JSON maps one JSON value (decoded with UseNumber) onto Cedar: strings,
// booleans, whole numbers (Long), arrays (Set), objects (Record), and
// Cedar's JSON escapes for entity references ({"__entity": {"type": …,
// "id": …}}) and extension values ({"__extn": {"fn": "ip", "arg":
// "10.0.0.1"}}). Cedar has no floating point and no null, so those are
// refused rather than approximated.
func (c *Converter) JSON(what string, v any, depth int) (types.Value, error) {
	if err := c.Count(what); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case string:
		return types.String(v), nil
	case bool:
		return types.Boolean(v), nil
	case json.Number:
		return long(what, v)
	case []any:
		if err := c.Nest(what, depth+1); err != nil {
			return nil, err
		}
		vals := make([]types.Value, len(v))
		for i, e := range v {
			val, err := c.JSON(elemName(what, i), e, depth+1)
			if err != nil {
				return nil, err
			}
			vals[i] = val
		}
		return types.NewSet(vals...), nil
	case map[string]any:
		if IsEscape(v) {
			return escape(what, v)
		}
		fields, err := c.JSONRecord(what, v, depth+1)
		if err != nil {
			return nil, err
		}
		return types.NewRecord(fields), nil
	case nil:
		return nil, engine.Invalid("%s: null has no Cedar value; leave the field out", what)
	default:
		return nil, engine.Invalid("%s: unsupported JSON value", what)
	}
}

func long(what string, n json.Number) (types.Value, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return types.Long(i), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return nil, engine.Invalid("%s: %s is not a whole number in the 64-bit range; Cedar has no floating point (send a string, or a whole number)", what, n)
	}
	return types.Long(int64(f)), nil
}

// IsEscape reports whether an object is one of Cedar's JSON escapes, which
// are objects with exactly one member, __entity or __extn: the conversion
// makes it an entity reference or an extension value, not a record.
func IsEscape(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	_, entity := m["__entity"]
	_, extn := m["__extn"]
	return entity || extn
}

// escape decodes an escape with cedar-go's own JSON value parser, so the
// escapes mean exactly what they mean in Cedar's entity JSON.
func escape(what string, m map[string]any) (types.Value, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, engine.Invalid("%s: %v", what, err)
	}
	var v types.Value
	if err := types.UnmarshalJSON(b, &v); err != nil {
		return nil, engine.Invalid("%s: %v", what, err)
	}
	return v, nil
}

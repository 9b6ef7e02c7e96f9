package authzen

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/server"
)

// converter turns JSON (decoded with UseNumber) into Cedar values within
// the service's limits.
type converter struct {
	*server.Budget
}

func (c *converter) record(what string, m map[string]any, depth int) (types.RecordMap, error) {
	if err := c.Nest(what, depth); err != nil {
		return nil, err
	}
	out := make(types.RecordMap, len(m))
	for k, v := range m {
		val, err := c.value(what+"."+k, v, depth)
		if err != nil {
			return nil, err
		}
		out[types.String(k)] = val
	}
	return out, nil
}

// value maps JSON onto Cedar: strings, booleans, whole numbers (Long),
// arrays (Set), objects (Record), and Cedar's JSON escapes for entity
// references ({"__entity": {"type": …, "id": …}}) and extension values
// ({"__extn": {"fn": "ip", "arg": "10.0.0.1"}}). Cedar has no floating
// point and no null, so those are refused rather than approximated.
func (c *converter) value(what string, v any, depth int) (types.Value, error) {
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
			val, err := c.value(fmt.Sprintf("%s[%d]", what, i), e, depth+1)
			if err != nil {
				return nil, err
			}
			vals[i] = val
		}
		return types.NewSet(vals...), nil
	case map[string]any:
		if isEscape(v) {
			return escape(what, v)
		}
		fields, err := c.record(what, v, depth+1)
		if err != nil {
			return nil, err
		}
		return types.NewRecord(fields), nil
	case nil:
		return nil, server.Invalid("%s: null has no Cedar value; leave the field out", what)
	default:
		return nil, server.Invalid("%s: unsupported JSON value", what)
	}
}

func long(what string, n json.Number) (types.Value, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return types.Long(i), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return nil, server.Invalid("%s: %s is not a whole number in the 64-bit range; Cedar has no floating point (send a string, or a whole number)", what, n)
	}
	return types.Long(int64(f)), nil
}

// isEscape reports whether an object is one of Cedar's JSON escapes, which
// are objects with exactly one member, __entity or __extn.
func isEscape(m map[string]any) bool {
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
		return nil, server.Invalid("%s: %v", what, err)
	}
	var v types.Value
	if err := types.UnmarshalJSON(b, &v); err != nil {
		return nil, server.Invalid("%s: %v", what, err)
	}
	return v, nil
}

package grantapi

import (
	"github.com/cedar-policy/cedar-go/types"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// encodeRecord is the wire form of a grant's attributes, the inverse of
// cedarvalue's conversion.
func encodeRecord(m types.RecordMap) map[string]*pdpv1.Value {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*pdpv1.Value, len(m))
	for k, v := range m {
		out[string(k)] = encodeValue(v)
	}
	return out
}

func encodeValue(v types.Value) *pdpv1.Value {
	switch v := v.(type) {
	case types.Boolean:
		return &pdpv1.Value{Kind: &pdpv1.Value_BoolValue{BoolValue: bool(v)}}
	case types.Long:
		return &pdpv1.Value{Kind: &pdpv1.Value_LongValue{LongValue: int64(v)}}
	case types.String:
		return &pdpv1.Value{Kind: &pdpv1.Value_StringValue{StringValue: string(v)}}
	case types.EntityUID:
		return &pdpv1.Value{Kind: &pdpv1.Value_EntityValue{EntityValue: ref(v)}}
	case types.Set:
		set := &pdpv1.ValueSet{}
		for e := range v.All() {
			set.Values = append(set.Values, encodeValue(e))
		}
		return &pdpv1.Value{Kind: &pdpv1.Value_SetValue{SetValue: set}}
	case types.Record:
		return &pdpv1.Value{Kind: &pdpv1.Value_RecordValue{RecordValue: &pdpv1.Record{Fields: encodeRecord(v.Map())}}}
	case types.Datetime:
		return extension("datetime", v.String())
	case types.Duration:
		return extension("duration", v.String())
	case types.Decimal:
		return extension("decimal", v.String())
	case types.IPAddr:
		return extension("ip", v.String())
	}
	return extension("unknown", v.String())
}

func extension(fn, arg string) *pdpv1.Value {
	return &pdpv1.Value{Kind: &pdpv1.Value_ExtensionValue{ExtensionValue: &pdpv1.ExtensionCall{Fn: fn, Arg: arg}}}
}

package cedarvalue

import (
	"github.com/cedar-policy/cedar-go/types"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// ToWireRecord is the wire form of a Cedar record, the inverse of
// WireRecord; nil for an empty record.
func ToWireRecord(m types.RecordMap) map[string]*pdpv1.Value {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*pdpv1.Value, len(m))
	for k, v := range m {
		out[string(k)] = ToWire(v)
	}
	return out
}

// ToWire is the wire form of a Cedar value, the inverse of Wire: extension
// values become the extension call that makes them.
func ToWire(v types.Value) *pdpv1.Value {
	switch v := v.(type) {
	case types.Boolean:
		return &pdpv1.Value{Kind: &pdpv1.Value_BoolValue{BoolValue: bool(v)}}
	case types.Long:
		return &pdpv1.Value{Kind: &pdpv1.Value_LongValue{LongValue: int64(v)}}
	case types.String:
		return &pdpv1.Value{Kind: &pdpv1.Value_StringValue{StringValue: string(v)}}
	case types.EntityUID:
		return &pdpv1.Value{Kind: &pdpv1.Value_EntityValue{EntityValue: &pdpv1.EntityRef{Type: string(v.Type), Id: string(v.ID)}}}
	case types.Set:
		set := &pdpv1.ValueSet{}
		for e := range v.All() {
			set.Values = append(set.Values, ToWire(e))
		}
		return &pdpv1.Value{Kind: &pdpv1.Value_SetValue{SetValue: set}}
	case types.Record:
		return &pdpv1.Value{Kind: &pdpv1.Value_RecordValue{RecordValue: &pdpv1.Record{Fields: ToWireRecord(v.Map())}}}
	case types.Datetime:
		return extensionCall("datetime", v.String())
	case types.Duration:
		return extensionCall("duration", v.String())
	case types.Decimal:
		return extensionCall("decimal", v.String())
	case types.IPAddr:
		return extensionCall("ip", v.String())
	}
	// Cedar has no other kinds of value; an unknown function is refused
	// when decoded, never mistaken for a value.
	return extensionCall("unknown", v.String())
}

func extensionCall(fn, arg string) *pdpv1.Value {
	return &pdpv1.Value{Kind: &pdpv1.Value_ExtensionValue{ExtensionValue: &pdpv1.ExtensionCall{Fn: fn, Arg: arg}}}
}

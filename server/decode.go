package server

import (
	"errors"
	"fmt"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// ErrLimitExceeded marks a request larger than the configured limits.
var ErrLimitExceeded = errors.New("request exceeds a limit")

// Limits bound what one request may ask of the server.
type Limits struct {
	// MaxMessageBytes is the largest request message accepted.
	MaxMessageBytes int
	// MaxDepth is the deepest nesting of records and sets in any value.
	MaxDepth int
	// MaxValues is the most values one request may carry across its
	// context, intent attributes and entities.
	MaxValues int
	// MaxEntities is the most request-scoped entities per request.
	MaxEntities int
	// MaxBatch is the most requests in one BatchAuthorize.
	MaxBatch int
}

// DefaultLimits are the limits used where none are configured.
var DefaultLimits = Limits{
	MaxMessageBytes: 4 << 20,
	MaxDepth:        16,
	MaxValues:       10_000,
	MaxEntities:     1_000,
	MaxBatch:        100,
}

// CheckBatch refuses a batch of n requests that exceeds MaxBatch, the same
// way for every front end that takes batches.
func (l Limits) CheckBatch(n int) error {
	if n > l.MaxBatch {
		return Invalid("batch of %d requests exceeds the maximum of %d", n, l.MaxBatch)
	}
	return nil
}

// SetDefaults fills unset limits from DefaultLimits.
func (l *Limits) SetDefaults() {
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxMessageBytes, DefaultLimits.MaxMessageBytes)
	set(&l.MaxDepth, DefaultLimits.MaxDepth)
	set(&l.MaxValues, DefaultLimits.MaxValues)
	set(&l.MaxEntities, DefaultLimits.MaxEntities)
	set(&l.MaxBatch, DefaultLimits.MaxBatch)
}

// Invalid returns an error marking the request as malformed; ToStatus maps
// it to InvalidArgument.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{policystore.ErrInvalidRequest}, args...)...)
}

// Budget enforces the value-count and nesting limits while one request is
// converted into Cedar values, whatever its wire format, so that no
// oversized input is ever fully materialised. A Budget serves one request.
type Budget struct {
	limits Limits
	values int // values converted so far, against limits.MaxValues
}

// NewBudget returns a fresh budget for one request.
func NewBudget(l Limits) *Budget { return &Budget{limits: l} }

// Count takes one value from the budget.
func (b *Budget) Count(what string) error {
	b.values++
	if b.values > b.limits.MaxValues {
		return fmt.Errorf("%w: %s: more than %d values in one request", ErrLimitExceeded, what, b.limits.MaxValues)
	}
	return nil
}

// Nest checks that a value at depth may hold nested values.
func (b *Budget) Nest(what string, depth int) error {
	if depth > b.limits.MaxDepth {
		return Invalid("%s: nested deeper than %d", what, b.limits.MaxDepth)
	}
	return nil
}

// EntityUID checks an entity type name and builds the UID.
func EntityUID(what, typ, id string) (types.EntityUID, error) {
	t, err := types.NewEntityType(typ)
	if err != nil {
		return types.EntityUID{}, Invalid("%s: malformed entity type %q", what, typ)
	}
	return types.NewEntityUID(t, types.String(id)), nil
}

// decoder turns one wire request into a policystore.Request.
type decoder struct {
	*Budget
}

// DecodeRequest checks and converts an AuthorizeRequest.
func DecodeRequest(req *pdpv1.AuthorizeRequest, limits Limits) (policystore.Request, error) {
	d := decoder{NewBudget(limits)}
	return d.request(req)
}

func (d *decoder) request(req *pdpv1.AuthorizeRequest) (policystore.Request, error) {
	var out policystore.Request
	var err error
	if out.Principal, err = requiredRef("principal", req.GetPrincipal()); err != nil {
		return out, err
	}
	if out.Resource, err = requiredRef("resource", req.GetResource()); err != nil {
		return out, err
	}
	if out.Action, err = actionUID(req.GetIntent()); err != nil {
		return out, err
	}
	if out.Context, err = d.fields("context", req.GetContext().GetFields(), 0); err != nil {
		return out, err
	}
	attrs, err := d.fields("intent.attributes", req.GetIntent().GetAttributes(), 1)
	if err != nil {
		return out, err
	}
	out.Intent = policystore.Intent{
		Purpose:    req.GetIntent().GetPurpose(),
		TaskID:     req.GetIntent().GetTaskId(),
		Tool:       req.GetIntent().GetTool(),
		Attributes: attrs,
	}
	out.Entities, err = d.entities(req.GetEntities())
	return out, err
}

func requiredRef(what string, ref *pdpv1.EntityRef) (types.EntityUID, error) {
	if ref == nil || ref.GetType() == "" {
		return types.EntityUID{}, Invalid("%s is required (type and id)", what)
	}
	return entityUID(what, ref)
}

func entityUID(what string, ref *pdpv1.EntityRef) (types.EntityUID, error) {
	return EntityUID(what, ref.GetType(), ref.GetId())
}

func actionUID(intent *pdpv1.Intent) (types.EntityUID, error) {
	if intent == nil || intent.Action == nil {
		return types.EntityUID{}, Invalid("intent.action is required")
	}
	typ := intent.GetActionType()
	if typ == "" {
		typ = "Action"
	}
	return entityUID("intent.action_type", &pdpv1.EntityRef{Type: typ, Id: intent.GetAction()})
}

func (d *decoder) fields(what string, in map[string]*pdpv1.Value, depth int) (types.RecordMap, error) {
	if err := d.Nest(what, depth); err != nil {
		return nil, err
	}
	out := make(types.RecordMap, len(in))
	for k, v := range in {
		val, err := d.value(what+"."+k, v, depth)
		if err != nil {
			return nil, err
		}
		out[types.String(k)] = val
	}
	return out, nil
}

func (d *decoder) value(what string, v *pdpv1.Value, depth int) (types.Value, error) {
	if err := d.Count(what); err != nil {
		return nil, err
	}
	switch k := v.GetKind().(type) {
	case *pdpv1.Value_BoolValue:
		return types.Boolean(k.BoolValue), nil
	case *pdpv1.Value_LongValue:
		return types.Long(k.LongValue), nil
	case *pdpv1.Value_StringValue:
		return types.String(k.StringValue), nil
	case *pdpv1.Value_EntityValue:
		return entityUID(what, k.EntityValue)
	case *pdpv1.Value_SetValue:
		if err := d.Nest(what, depth+1); err != nil {
			return nil, err
		}
		vals := make([]types.Value, len(k.SetValue.GetValues()))
		for i, e := range k.SetValue.GetValues() {
			val, err := d.value(fmt.Sprintf("%s[%d]", what, i), e, depth+1)
			if err != nil {
				return nil, err
			}
			vals[i] = val
		}
		return types.NewSet(vals...), nil
	case *pdpv1.Value_RecordValue:
		fields, err := d.fields(what, k.RecordValue.GetFields(), depth+1)
		if err != nil {
			return nil, err
		}
		return types.NewRecord(fields), nil
	case *pdpv1.Value_ExtensionValue:
		return extension(what, k.ExtensionValue)
	default:
		return nil, Invalid("%s: value has no kind", what)
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
		return nil, Invalid("%s: unknown extension function %q (want datetime, duration, decimal or ip)", what, call.GetFn())
	}
	if err != nil {
		return nil, Invalid("%s: %s(%q): %v", what, call.GetFn(), call.GetArg(), err)
	}
	return v, nil
}

func (d *decoder) entities(in []*pdpv1.Entity) (types.EntityMap, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > d.limits.MaxEntities {
		return nil, fmt.Errorf("%w: %d entities, at most %d per request", ErrLimitExceeded, len(in), d.limits.MaxEntities)
	}
	out := make(types.EntityMap, len(in))
	for i, e := range in {
		what := fmt.Sprintf("entities[%d]", i)
		ent, err := d.entity(what, e)
		if err != nil {
			return nil, err
		}
		if _, dup := out[ent.UID]; dup {
			return nil, Invalid("%s: duplicate entity %s", what, ent.UID)
		}
		out[ent.UID] = ent
	}
	return out, nil
}

func (d *decoder) entity(what string, e *pdpv1.Entity) (types.Entity, error) {
	uid, err := requiredRef(what+".uid", e.GetUid())
	if err != nil {
		return types.Entity{}, err
	}
	attrs, err := d.fields(what+".attrs", e.GetAttrs(), 0)
	if err != nil {
		return types.Entity{}, err
	}
	tags, err := d.fields(what+".tags", e.GetTags(), 0)
	if err != nil {
		return types.Entity{}, err
	}
	parents := make([]types.EntityUID, len(e.GetParents()))
	for i, p := range e.GetParents() {
		if err := d.Count(what + ".parents"); err != nil {
			return types.Entity{}, err
		}
		if parents[i], err = requiredRef(fmt.Sprintf("%s.parents[%d]", what, i), p); err != nil {
			return types.Entity{}, err
		}
	}
	return types.Entity{
		UID:        uid,
		Parents:    types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(attrs),
		Tags:       types.NewRecord(tags),
	}, nil
}

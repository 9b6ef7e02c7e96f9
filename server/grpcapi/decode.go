package grpcapi

import (
	"fmt"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// decoder turns one wire request into a policystore.Request.
type decoder struct {
	*cedarvalue.Converter
}

// DecodeRequest checks and converts an AuthorizeRequest within limits.
func DecodeRequest(req *pdpv1.AuthorizeRequest, limits engine.Limits) (policystore.Request, error) {
	d := decoder{cedarvalue.New(limits)}
	return d.request(req, req.GetPrincipalToken() != "")
}

// request converts req; withToken says a principal token comes with it
// (its own or its batch's).
func (d *decoder) request(req *pdpv1.AuthorizeRequest, withToken bool) (policystore.Request, error) {
	var out policystore.Request
	var err error
	// With a token the principal may be left to the authenticate step,
	// which takes it from the verified token.
	if req.GetPrincipal() != nil || !withToken {
		if out.Principal, err = requiredRef("principal", req.GetPrincipal()); err != nil {
			return out, err
		}
	}
	if out.Resource, err = requiredRef("resource", req.GetResource()); err != nil {
		return out, err
	}
	if out.Action, err = actionUID(req.GetIntent()); err != nil {
		return out, err
	}
	// A context without fields stays nil: no map to make.
	if wire := req.GetContext().GetFields(); len(wire) > 0 {
		if out.Context, err = d.WireRecord("context", wire, 0); err != nil {
			return out, err
		}
	}
	var attrs types.RecordMap // nil when empty: no map to make
	if wire := req.GetIntent().GetAttributes(); len(wire) > 0 {
		if attrs, err = d.WireRecord("intent.attributes", wire, 1); err != nil {
			return out, err
		}
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
		return types.EntityUID{}, engine.Invalid("%s is required (type and id)", what)
	}
	return entityUID(what, ref)
}

func entityUID(what string, ref *pdpv1.EntityRef) (types.EntityUID, error) {
	return cedarvalue.EntityUID(what, ref.GetType(), ref.GetId())
}

func actionUID(intent *pdpv1.Intent) (types.EntityUID, error) {
	if intent == nil || intent.Action == nil {
		return types.EntityUID{}, engine.Invalid("intent.action is required")
	}
	typ := intent.GetActionType()
	if typ == "" {
		typ = "Action"
	}
	return entityUID("intent.action_type", &pdpv1.EntityRef{Type: typ, Id: intent.GetAction()})
}

func (d *decoder) entities(in []*pdpv1.Entity) (types.EntityMap, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > d.Limits().MaxEntities {
		return nil, fmt.Errorf("%w: %d entities, at most %d per request", engine.ErrLimitExceeded, len(in), d.Limits().MaxEntities)
	}
	out := make(types.EntityMap, len(in))
	for i, e := range in {
		what := fmt.Sprintf("entities[%d]", i)
		ent, err := d.entity(what, e)
		if err != nil {
			return nil, err
		}
		if _, dup := out[ent.UID]; dup {
			return nil, engine.Invalid("%s: duplicate entity %s", what, ent.UID)
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
	attrs, err := d.WireRecord(what+".attrs", e.GetAttrs(), 0)
	if err != nil {
		return types.Entity{}, err
	}
	tags, err := d.WireRecord(what+".tags", e.GetTags(), 0)
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

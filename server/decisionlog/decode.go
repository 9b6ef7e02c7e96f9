package decisionlog

import (
	"errors"
	"fmt"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/intentpdp/intentpdp/policystore"
)

// ErrUnreplayable marks a logged decision that cannot be decided again as
// it was: a field was redacted or could not be encoded, or the record
// predates the fields a decision depends on (action type, now, request
// entities).
var ErrUnreplayable = errors.New("decision log record cannot be replayed")

// KindShadow is the kind of a shadow record (see Record.Shadow).
const KindShadow = "shadow"

// Line is one decision log line read back, for replay. It holds what a
// decision depended on and what was decided.
type Line struct {
	DecisionID  string         `json:"decision_id"`
	Kind        string         `json:"kind"`
	Time        time.Time      `json:"time"`
	FrontEnd    string         `json:"front_end"`
	Principal   Ref            `json:"principal"`
	Action      *Ref           `json:"action"`
	Intent      lineIntent     `json:"intent"`
	Resource    Ref            `json:"resource"`
	Context     jsontext.Value `json:"context"`
	Now         *time.Time     `json:"now"`
	Entities    jsontext.Value `json:"entities"`
	EncodeError string         `json:"encode_error"`
	Redacted    bool           `json:"redacted"`
	LoggedDecision
	Shadow *LoggedDecision `json:"shadow"`
}

// LoggedDecision is a decision as the log spells it.
type LoggedDecision struct {
	Decision string `json:"decision"`
	Reasons  []struct {
		PolicyID string `json:"policy_id"`
	} `json:"reasons"`
	Revision  string   `json:"policy_revision"`
	WouldHave []string `json:"would_have"`
}

// Allow reports whether the logged decision was an allow.
func (d *LoggedDecision) Allow() bool { return d.Decision == string(policystore.Allow) }

// PolicyIDs are the logged determining policies.
func (d *LoggedDecision) PolicyIDs() []string {
	ids := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		ids[i] = r.PolicyID
	}
	return ids
}

// Ref is an entity reference as the log spells it. It is decoded as a
// plain struct, much faster than types.EntityUID's own JSON form.
type Ref struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// UID is the entity reference as a Cedar UID.
func (r Ref) UID() types.EntityUID {
	return types.NewEntityUID(types.EntityType(r.Type), types.String(r.ID))
}

type lineIntent struct {
	Purpose    string         `json:"purpose"`
	TaskID     string         `json:"task_id"`
	Tool       string         `json:"tool"`
	Attributes jsontext.Value `json:"attributes"`
}

// ParseLine decodes one decision log line. It uses encoding/json/v2's
// implementation, the one cedar-go decodes values with, which reads a line
// about twice as fast as encoding/json: replay's cost is mostly this.
func ParseLine(data []byte) (*Line, error) {
	var l Line
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("decision log line: %w", err)
	}
	return &l, nil
}

// Request rebuilds the request the logged decision was made for, context.now
// included, or fails with ErrUnreplayable.
func (l *Line) Request() (policystore.Request, error) {
	switch {
	case l.Redacted:
		return policystore.Request{}, fmt.Errorf("%w: fields were redacted", ErrUnreplayable)
	case l.EncodeError != "":
		return policystore.Request{}, fmt.Errorf("%w: the context could not be logged", ErrUnreplayable)
	case l.Action == nil || l.Now == nil:
		return policystore.Request{}, fmt.Errorf("%w: written before the log recorded the action type and now", ErrUnreplayable)
	}
	req := policystore.Request{
		Principal: l.Principal.UID(),
		Action:    l.Action.UID(),
		Resource:  l.Resource.UID(),
		Intent:    policystore.Intent{Purpose: l.Intent.Purpose, TaskID: l.Intent.TaskID, Tool: l.Intent.Tool},
		Now:       *l.Now,
	}
	var err error
	if req.Intent.Attributes, err = recordOf(l.Intent.Attributes); err != nil {
		return req, fmt.Errorf("intent attributes: %w", err)
	}
	if req.Context, err = recordOf(l.Context); err != nil {
		return req, fmt.Errorf("context: %w", err)
	}
	if len(l.Entities) > 0 {
		if err := req.Entities.UnmarshalJSON(l.Entities); err != nil {
			return req, fmt.Errorf("entities: %w", err)
		}
	}
	return req, nil
}

func recordOf(data jsontext.Value) (types.RecordMap, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var r types.Record
	if err := r.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	if r.Len() == 0 {
		return nil, nil
	}
	return r.Map(), nil
}

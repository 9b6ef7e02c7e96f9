package authzen

// The JSON messages of the AuthZEN Authorization API 1.0.

// entity is a subject or a resource.
type entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

type action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// evaluation is one access evaluation request. In an evaluations request
// it is also the set of defaults that each item overrides.
type evaluation struct {
	Subject  *entity        `json:"subject,omitempty"`
	Action   *action        `json:"action,omitempty"`
	Resource *entity        `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
}

// withDefaults returns e with every member it leaves out taken from def.
// Members are replaced whole, not merged, as the specification says.
func (e evaluation) withDefaults(def evaluation) evaluation {
	if e.Subject == nil {
		e.Subject = def.Subject
	}
	if e.Action == nil {
		e.Action = def.Action
	}
	if e.Resource == nil {
		e.Resource = def.Resource
	}
	if e.Context == nil {
		e.Context = def.Context
	}
	return e
}

type evaluationsRequest struct {
	evaluation
	Evaluations []evaluation `json:"evaluations"`
	Options     struct {
		EvaluationsSemantic string `json:"evaluations_semantic"`
	} `json:"options"`
}

// The evaluations_semantic values.
const (
	executeAll          = "execute_all"
	denyOnFirstDeny     = "deny_on_first_deny"
	permitOnFirstPermit = "permit_on_first_permit"
)

type decision struct {
	Decision bool           `json:"decision"`
	Context  map[string]any `json:"context,omitempty"`
}

type evaluationsResponse struct {
	Evaluations []decision `json:"evaluations"`
}

type searchRequest struct {
	evaluation
	Page *pageRequest `json:"page,omitempty"`
}

type pageRequest struct {
	Token string `json:"token,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

type searchResponse struct {
	Results []any        `json:"results"`
	Page    pageResponse `json:"page"`
}

type pageResponse struct {
	// NextToken is empty on the last page.
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// configuration is the /.well-known/authzen-configuration metadata.
type configuration struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint"`
	SearchResourceEndpoint    string `json:"search_resource_endpoint"`
	SearchActionEndpoint      string `json:"search_action_endpoint"`
}

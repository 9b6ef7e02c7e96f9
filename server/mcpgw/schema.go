package mcpgw

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
)

// SchemaOptions says how Schema names what the gateway decides with.
type SchemaOptions struct {
	// Upstream is the upstream's name, the id of its MCPServer entity
	// (named in the schema's heading only).
	Upstream string
	// Prefix is put before every tool's name to make its action, as the
	// gateway does when it mounts several upstreams ("github.").
	Prefix string
	// PrincipalType is the entity type of the agents (`--principal-type`
	// of the token verification); default Agent.
	PrincipalType string
	// ApproverType is the entity type of the people who approve task
	// grants (`--grant-caller-type`); default User.
	ApproverType string
	// Resources are the upstream's resource mappings: a mapped tool's
	// resource is of the mapping's type instead of MCPServer.
	Resources map[string]ResourceMapping
}

// maxSchemaDepth bounds how deeply nested an input schema is followed;
// deeper parts are left undeclared.
const maxSchemaDepth = 16

var cedarIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// cedarReserved are the words that cannot name a type or be left unquoted
// as an attribute.
var cedarReserved = map[string]bool{
	"true": true, "false": true, "if": true, "then": true, "else": true, "in": true, "is": true,
	"like": true, "has": true, "permit": true, "forbid": true, "when": true, "unless": true,
	"principal": true, "action": true, "resource": true, "context": true, "__cedar": true,
	"namespace": true, "entity": true, "type": true, "appliesTo": true, "enum": true,
	"Bool": true, "Boolean": true, "Long": true, "String": true, "Set": true, "Record": true, "Entity": true, "Extension": true,
}

// The declarations every generated schema starts with: the PDP's reserved
// context keys, the task grant entity and the grant decision (see
// examples/agents/agents.cedarschema, and README "Task grants"). %[1]s is
// the principal type, %[2]s the approver type, %[3]s the grant scope type.
const reservedDecls = `// A task grant: created through the PDP's GrantService, never by the
// bundle or a request; the PDP sets context.task to the live grant named
// by intent.task_id. Cedar schemas have no union types, so scope is
// declared with the widest type the bundle scopes grants to.
entity Task {
  grant_id: String,
  assignee: %[1]s,
  actions: Set<Action>,
  scope: Set<%[3]s>,
  purpose: String,
  approved_by: %[2]s,
  on_behalf_of?: %[2]s,
  not_before: __cedar::datetime,
  expires_at: __cedar::datetime,
  uses_left?: Long,
  attributes: {},
};

// What the PDP puts in every request context: intent (from the call's
// _meta or headers), now, identity when a principal token was verified
// (claims: declare those --principal-claims copies), task when the call
// names a live grant.
type Intent = {
  purpose: String,
  task_id: String,
  tool: String,
  attributes: {},
};
type Identity = {
  issuer: String,
  subject: String,
  spiffe_id: String,
  audience: Set<String>,
  expires_at: __cedar::datetime,
  claims: {},
  caller: String,
  actor?: {
    sub: String,
    iss: String,
  },
};

// Creating a task grant: principal = the approver, resource = the task to
// be, context = the grant's content.
action grant appliesTo {
  principal: [%[2]s],
  resource: [Task],
  context: {
    intent: Intent,
    now: __cedar::datetime,
    identity?: Identity,
    assignee: %[1]s,
    actions: Set<Action>,
    scope: Set<%[3]s>,
    purpose: String,
    ttl_seconds: Long,
    max_uses: Long,
    on_behalf_of?: %[2]s,
    attributes: {},
  },
};
`

// Validate checks that the options name entity types a schema can
// declare.
func (o SchemaOptions) Validate() error {
	for _, e := range o.entityTypes() {
		if !cedarIdent.MatchString(e) || cedarReserved[e] || slices.Contains(reservedTypes, e) {
			return fmt.Errorf("%q cannot be an entity type of the schema: want an identifier other than %s", e, strings.Join(reservedTypes, ", "))
		}
	}
	return nil
}

// entityTypes are the entity types the schema declares besides Task,
// sorted.
func (o SchemaOptions) entityTypes() []string {
	entities := []string{o.principalType(), o.approverType(), "MCPServer"}
	for _, m := range o.Resources {
		entities = append(entities, m.Type)
	}
	slices.Sort(entities)
	return slices.Compact(entities)
}

func (o SchemaOptions) principalType() string { return cmp.Or(o.PrincipalType, "Agent") }
func (o SchemaOptions) approverType() string  { return cmp.Or(o.ApproverType, "User") }

// reservedTypes are the names the schema declares itself (reservedDecls,
// the resource and prompt entities), which a principal or resource type
// may not take.
var reservedTypes = []string{"Task", "Intent", "Identity", "Action", string(ResourceType), string(PromptType)}

// Offer is what one upstream offers the gateway, read once when it is
// mounted: what Schema declares.
type Offer struct {
	Tools     []*mcp.Tool
	Resources []*mcp.Resource
	Templates []*mcp.ResourceTemplate
	Prompts   []*mcp.Prompt
}

// Schema writes a Cedar schema (human syntax) for what one upstream
// offers: one action per tool, its context.input typed from the tool's
// input schema, beside the keys the PDP reserves; when the upstream offers
// resources, the action read_resource on MCPResource entities; when it
// offers prompts, the action get_prompt on MCPPrompt entities. It
// validates in strict mode; a tool whose name makes a duplicate action is
// an error.
//
// JSON Schema → Cedar: string (and a string enum or const) → String,
// integer → Long, boolean → Bool, array → Set<items>, object → a record
// (properties in `required` are required attributes, the others
// optional); a type list with "null" is the other type (the gateway
// refuses null values). What has no single Cedar type is left undeclared,
// with a comment saying why, so that strict validation refuses a policy
// that reads it: number (the gateway makes whole numbers Long and
// fractions decimal), oneOf, anyOf, $ref, several types, untyped values,
// arrays without items. An object without properties is the empty
// record: none of its attributes can be read.
//
// read_resource's context.input is a record of every variable of the
// upstream's resource templates, each optional (a URI fills in the
// variables of the one template it matched; a URI the upstream lists
// itself, none): String, or undeclared when the variable is exploded or
// repeated (then a Set<String> or a String, by the URI). get_prompt's
// context.input is a record of every argument of the upstream's prompts,
// each a String, required when every prompt requires it (the gateway
// refuses a prompts/get without a required argument).
func Schema(offer Offer, opts SchemaOptions) ([]byte, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	entities := opts.entityTypes()

	var b bytes.Buffer
	b.WriteString("// Cedar schema of the MCP server")
	if opts.Upstream != "" {
		fmt.Fprintf(&b, " %s", comment(opts.Upstream))
	}
	b.WriteString(", written by `intentpdp mcp schema`.\n")
	b.WriteString("// One action per tool, its arguments as context.input. Arguments that have\n")
	b.WriteString("// no single Cedar type are left out (see the comments): no policy can read\n")
	b.WriteString("// them.\n\n")
	for _, e := range entities {
		fmt.Fprintf(&b, "entity %s;\n", e)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, reservedDecls, opts.principalType(), opts.approverType(), "MCPServer")

	seen := map[string]bool{"grant": true}
	if len(offer.Resources) > 0 || len(offer.Templates) > 0 {
		seen[string(ActionReadResource.ID)] = true
	}
	if len(offer.Prompts) > 0 {
		seen[string(ActionGetPrompt.ID)] = true
	}
	sorted := slices.SortedFunc(slices.Values(offer.Tools), func(a, b *mcp.Tool) int { return strings.Compare(a.Name, b.Name) })
	for _, t := range sorted {
		action := opts.Prefix + t.Name
		if seen[action] {
			return nil, fmt.Errorf("tool %q: action %q is declared twice", t.Name, action)
		}
		seen[action] = true
		resource := "MCPServer"
		if m, ok := opts.Resources[t.Name]; ok {
			resource = m.Type
		}
		in, err := inputSchema(t)
		if err != nil {
			return nil, err
		}
		b.WriteString("\n")
		if d := comment(t.Description); d != "" {
			fmt.Fprintf(&b, "// %s\n", d)
		}
		writeAction(&b, action, opts.principalType(), resource, in)
	}
	if seen[string(ActionReadResource.ID)] {
		b.WriteString("\n// Reading a resource: Action::\"read_resource\" on MCPResource::\"<uri>\", a\n")
		b.WriteString("// child of the upstream's MCPServer entity; context.input holds the\n")
		b.WriteString("// variables of the resource template the URI matched.\n")
		fmt.Fprintf(&b, "entity %s in [%s] {\n  uri: String,\n};\n", ResourceType, ServerType)
		writeAction(&b, string(ActionReadResource.ID), opts.principalType(), string(ResourceType), templateVariables(offer.Templates))
	}
	if seen[string(ActionGetPrompt.ID)] {
		b.WriteString("\n// Getting a prompt (offered when the upstream's configuration says\n")
		b.WriteString("// \"prompts\": \"decide\"): Action::\"get_prompt\" on MCPPrompt::\"<name>\", a\n")
		b.WriteString("// child of the upstream's MCPServer entity, name its name on the upstream;\n")
		b.WriteString("// context.input holds the prompt's arguments.\n")
		fmt.Fprintf(&b, "entity %s in [%s] {\n  name: String,\n};\n", PromptType, ServerType)
		writeAction(&b, string(ActionGetPrompt.ID), opts.principalType(), string(PromptType), promptArguments(offer.Prompts))
	}
	return b.Bytes(), nil
}

// writeAction declares one action the gateway decides, its context the
// reserved keys and input.
func writeAction(b *bytes.Buffer, action, principal, resource string, input *jsonSchema) {
	fmt.Fprintf(b, "action %s appliesTo {\n", quote(action))
	fmt.Fprintf(b, "  principal: [%s],\n  resource: [%s],\n", principal, resource)
	b.WriteString("  context: {\n    intent: Intent,\n    now: __cedar::datetime,\n    identity?: Identity,\n    task?: Task,\n")
	fmt.Fprintf(b, "    input: %s,\n  },\n};\n", input.record("    "))
}

// templateVariables is the object schema of read_resource's
// context.input: every variable of the templates, optional; a String when
// it matches one value, undeclared when it is exploded or repeated in a
// template (uritemplate then matches a String or a list, by the URI).
// Templates that do not parse are left out, as the gateway leaves them.
func templateVariables(templates []*mcp.ResourceTemplate) *jsonSchema {
	in := &jsonSchema{kind: "object", Properties: map[string]*jsonSchema{}}
	for _, rt := range templates {
		if _, err := uritemplate.New(rt.URITemplate); err != nil {
			continue
		}
		count := map[string]int{}
		for _, expr := range templateExpression.FindAllStringSubmatch(rt.URITemplate, -1) {
			for _, spec := range strings.Split(strings.TrimLeft(expr[1], "+#./;?&"), ",") {
				name, exploded := strings.CutSuffix(spec, "*")
				name, _, _ = strings.Cut(name, ":")
				count[name]++
				if exploded {
					count[name]++
				}
			}
		}
		for name, n := range count {
			switch v := in.Properties[name]; {
			case n > 1:
				in.Properties[name] = &jsonSchema{why: "exploded or repeated in a template: a Set<String> or a String, by the URI"}
			case v == nil:
				in.Properties[name] = &jsonSchema{kind: "string"}
			}
		}
	}
	return in
}

var templateExpression = regexp.MustCompile(`\{([^{}]*)\}`)

// promptArguments is the object schema of get_prompt's context.input:
// every argument of the prompts, a String, required when every prompt
// requires it.
func promptArguments(prompts []*mcp.Prompt) *jsonSchema {
	in := &jsonSchema{kind: "object", Properties: map[string]*jsonSchema{}}
	required := map[string]int{}
	for _, p := range prompts {
		for _, a := range p.Arguments {
			in.Properties[a.Name] = &jsonSchema{kind: "string"}
			if a.Required {
				required[a.Name]++
			}
		}
	}
	for name, n := range required {
		if n == len(prompts) {
			in.Required = append(in.Required, name)
		}
	}
	return in
}

// jsonSchema is the part of a JSON Schema that Schema reads.
type jsonSchema struct {
	Type       json.RawMessage // a name or a list of names
	Properties map[string]*jsonSchema
	Required   []string
	Items      *jsonSchema
	Enum       []any
	Const      *any
	OneOf      []json.RawMessage
	AnyOf      []json.RawMessage
	Ref        string // $ref

	kind, why string // set by classify
}

// UnmarshalJSON reads a schema leniently: a keyword whose value is not of
// the form read here (a boolean schema, a draft-07 tuple of items, a
// required that is no list) counts as absent. That only ever declares
// less: an untyped value, an optional attribute, an empty record.
func (s *jsonSchema) UnmarshalJSON(data []byte) error {
	*s = jsonSchema{}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return nil
	}
	field(fields, "type", &s.Type)
	field(fields, "properties", &s.Properties)
	field(fields, "required", &s.Required)
	field(fields, "items", &s.Items)
	field(fields, "enum", &s.Enum)
	field(fields, "const", &s.Const)
	field(fields, "oneOf", &s.OneOf)
	field(fields, "anyOf", &s.AnyOf)
	field(fields, "$ref", &s.Ref)
	return nil
}

// field sets *dst to fields[key] when that has dst's form.
func field[T any](fields map[string]json.RawMessage, key string, dst *T) {
	var v T
	if raw, ok := fields[key]; ok && json.Unmarshal(raw, &v) == nil {
		*dst = v
	}
}

// inputSchema reads a tool's input schema, which MCP requires to be an
// object schema.
func inputSchema(t *mcp.Tool) (*jsonSchema, error) {
	raw, err := json.Marshal(t.InputSchema)
	if err != nil {
		return nil, fmt.Errorf("tool %q: input schema: %w", t.Name, err)
	}
	var s jsonSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("tool %q: input schema is not a JSON Schema object: %w", t.Name, err)
	}
	if ty, _ := s.types(); len(ty) > 0 && ty[0] != "object" {
		return nil, fmt.Errorf("tool %q: input schema is of type %q, MCP requires an object", t.Name, ty[0])
	}
	s.Type = json.RawMessage(`"object"`) // whatever it said, the arguments are an object
	s.classify(0)
	return &s, nil
}

// types are the schema's type names, null left out (the gateway refuses
// null), and whether it names any at all.
func (s *jsonSchema) types() ([]string, bool) {
	if len(s.Type) == 0 {
		return nil, false
	}
	var names []string
	var one string
	if err := json.Unmarshal(s.Type, &one); err == nil {
		names = []string{one}
	} else if err := json.Unmarshal(s.Type, &names); err != nil {
		return nil, true
	}
	return slices.DeleteFunc(names, func(n string) bool { return n == "null" }), true
}

// classify sets the kind of s and of the schemas inside it: the JSON type
// its values have ("string", "integer", "boolean", "array", "object"), or
// "" and why it has no single Cedar type.
func (s *jsonSchema) classify(depth int) {
	s.kind, s.why = s.kindOf(depth)
}

func (s *jsonSchema) kindOf(depth int) (string, string) {
	if depth > maxSchemaDepth {
		return "", fmt.Sprintf("nested deeper than %d", maxSchemaDepth)
	}
	if s.Ref != "" {
		return "", "a $ref"
	}
	names, typed := s.types()
	if !typed {
		switch {
		case len(s.OneOf) > 0 || len(s.AnyOf) > 0:
			return "", "oneOf/anyOf without a type"
		case s.Const != nil && isString(*s.Const), len(s.Enum) > 0 && all(s.Enum, isString):
			return "string", ""
		}
		return "", "no type"
	}
	if len(names) != 1 {
		return "", fmt.Sprintf("types %s", string(s.Type))
	}
	switch names[0] {
	case "string", "integer", "boolean":
		return names[0], ""
	case "number":
		return "", "a JSON number: whole numbers reach policies as Long, fractions as decimal"
	case "object":
		for _, p := range s.Properties {
			if p != nil {
				p.classify(depth + 1)
			}
		}
		return "object", ""
	case "array":
		if s.Items == nil {
			return "", "an array without items"
		}
		s.Items.classify(depth + 1)
		if s.Items.kind == "" {
			return "", "an array of " + s.Items.why
		}
		return "array", ""
	}
	return "", fmt.Sprintf("type %q", names[0])
}

// cedarType is the Cedar type of a classified schema with a kind, as the
// schema writes it (a record over several lines, indented by indent).
func (s *jsonSchema) cedarType(indent string) string {
	switch s.kind {
	case "string":
		return "String"
	case "integer":
		return "Long"
	case "boolean":
		return "Bool"
	case "array":
		return "Set<" + s.Items.cedarType(indent) + ">"
	}
	return s.record(indent)
}

// record is the record type of an object schema: its properties in
// `required` are required attributes, the others optional.
func (s *jsonSchema) record(indent string) string {
	if len(s.Properties) == 0 {
		return "{}"
	}
	var b strings.Builder
	b.WriteString("{\n")
	inner := indent + "  "
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		p := s.Properties[name]
		if p == nil || p.kind == "" {
			why := "no type"
			if p != nil {
				why = p.why
			}
			fmt.Fprintf(&b, "%s// %s: not declared, %s\n", inner, comment(name), why)
			continue
		}
		opt := "?"
		if slices.Contains(s.Required, name) {
			opt = ""
		}
		fmt.Fprintf(&b, "%s%s%s: %s,\n", inner, attrName(name), opt, p.cedarType(inner))
	}
	b.WriteString(indent + "}")
	return b.String()
}

func isString(v any) bool { _, ok := v.(string); return ok }

func all(vs []any, f func(any) bool) bool {
	for _, v := range vs {
		if !f(v) {
			return false
		}
	}
	return true
}

// attrName is an attribute name as the schema writes it: bare when it is
// an identifier, else quoted.
func attrName(s string) string {
	if cedarIdent.MatchString(s) && !cedarReserved[s] {
		return s
	}
	return quote(s)
}

// quote writes s as a Cedar string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u{%x}`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// comment makes untrusted text (a tool's description, a name) safe inside
// a line comment: its first line, printable characters only, shortened.
func comment(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 || r == 0x85 {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 120 {
		s = string(r[:117]) + "..."
	}
	return s
}

// ReadOffer connects to one upstream, reads what it offers as the gateway
// would when it mounts it, and disconnects: what `intentpdp mcp schema`
// makes a schema from.
func ReadOffer(ctx context.Context, cfg UpstreamConfig, log *slog.Logger) (Offer, error) {
	up := newUpstream(cfg, log)
	defer up.close()
	var o Offer
	caps, err := up.capabilities(ctx)
	if err == nil && caps.Tools != nil {
		o.Tools, err = up.tools(ctx)
	}
	if err == nil && caps.Resources != nil {
		if o.Resources, err = up.resources(ctx); err == nil {
			o.Templates, err = up.resourceTemplates(ctx)
		}
	}
	if err == nil && caps.Prompts != nil {
		o.Prompts, err = up.prompts(ctx)
	}
	return o, err
}

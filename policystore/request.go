package policystore

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// ErrInvalidRequest marks a request that cannot be evaluated as given.
var ErrInvalidRequest = errors.New("invalid request")

// Request is one authorization question, decoded and checked.
type Request struct {
	Principal types.EntityUID
	Action    types.EntityUID
	Resource  types.EntityUID
	// Intent is what the principal is trying to do; policies see it as
	// context.intent.
	Intent Intent
	// Context is the caller's context, without the reserved keys that
	// Decide adds (see ContextIntent, ContextNow).
	Context types.RecordMap
	// Now is the time policies see as context.now: the PDP's clock.
	Now time.Time
	// Entities are request-scoped entities, merged under the bundle's (see
	// merge). Their hierarchy may be at most MaxRequestEntityDepth deep.
	Entities types.EntityMap
	// RejectOverrides makes request entity data that the bundle overrides an
	// error instead of being ignored and reported.
	RejectOverrides bool
	// Identity is the principal's verified identity, set by the engine's
	// authenticate step; nil when no token was verified. Policies see it as
	// context.identity.
	Identity *Identity
	// TaskType, when set, is the entity type of the PDP's task grants: the
	// PDP then owns context.task (a request may not set it) and entities of
	// that type (request entities of it are ignored, whatever the manifest
	// says). The engine's enrich step sets it when grants are configured.
	TaskType types.EntityType
	// Task is the live task grant the enrich step found for Intent.TaskID,
	// nil when none. Decide adds it to the entities with the bundle's
	// authority and policies see its UID as context.task.
	Task *types.Entity
	// TaskState is what the enrich step found for Intent.TaskID (live,
	// expired, revoked, ...), for the decision log and span; empty without
	// grants or without a task id.
	TaskState string
}

// Identity is what a verified principal token proved. One Identity may be
// shared by every request carrying the same token from the same caller:
// it is read only once built, and its Cedar record is made once, on first
// use.
type Identity struct {
	Issuer    string
	Subject   string
	SPIFFEID  string // "" when the subject is no SPIFFE ID
	Audience  types.Set
	ExpiresAt time.Time
	// Claims are the configured claims, typed; Actor is the RFC 8693 `act`
	// chain as a record {sub, iss, act?}, or nil without one.
	Claims types.Record
	Actor  *types.Record
	// Caller is the SPIFFE ID of the mTLS caller that forwarded the token,
	// or "".
	Caller string

	rec atomic.Pointer[types.Record]
}

// Intent is what the principal is trying to do, beyond the Cedar action.
type Intent struct {
	Purpose    string
	TaskID     string
	Tool       string
	Attributes types.RecordMap
}

// Reserved context keys, set by the PDP.
const (
	ContextIntent   = "intent"
	ContextNow      = "now"
	ContextIdentity = "identity"
	ContextTask     = "task"
)

// CedarContext is the context policies see: the caller's fields plus the
// reserved keys, `intent` (purpose, task_id, tool, attributes), `now` and,
// when a token was verified, `identity` (issuer, subject, spiffe_id,
// audience, expires_at, claims, caller, actor?);
// with grants (req.TaskType set), `task` when a live grant was found.
// It is the one place where reserved keys are made (Decide calls it); a
// caller may not set one itself. req.Context is not modified, so a caller
// may reuse it.
func (req *Request) CedarContext() (types.Record, error) {
	return req.cedarContext(nil)
}

// cedarContext is CedarContext with intent records taken from intents
// when it is not nil.
func (req *Request) cedarContext(intents *intentRecords) (types.Record, error) {
	if req.Principal.Type == "" {
		return types.Record{}, fmt.Errorf("%w: principal is required", ErrInvalidRequest)
	}
	for _, k := range []types.String{ContextIntent, ContextNow, ContextIdentity} {
		if _, ok := req.Context[k]; ok {
			return types.Record{}, fmt.Errorf("%w: context key %q is reserved: the PDP sets it", ErrInvalidRequest, k)
		}
	}
	if _, ok := req.Context[ContextTask]; ok && req.TaskType != "" {
		return types.Record{}, fmt.Errorf("%w: context key %q is reserved: the PDP sets it from intent.task_id", ErrInvalidRequest, ContextTask)
	}
	intent := intents.entry(req.Intent)
	key := contextKey{now: req.Now.UnixMilli(), identity: req.Identity}
	if req.Task != nil {
		key.task, key.hasTask = req.Task.UID, true
	}
	// A context is the intent's record, the time, the identity and task,
	// and the caller's fields: requests repeating all of them within a
	// millisecond, as a busy PDP sees, share one record (records are
	// immutable). A caller field named like the task the PDP sets would be
	// overridden, so such a context is never shared.
	reuse := intent != nil && !(req.Task != nil && hasField(req.Context, ContextTask))
	if reuse {
		if rec, ok := intent.recentContext(key, req.Context); ok {
			return rec, nil
		}
	}
	// types.NewRecord copies the map it is given, so the map is scratch,
	// reused across calls while small (reserved keys: at most four).
	fields, scratch := recordFields(len(req.Context) + 4)
	if scratch {
		defer putScratch(fields)
	}
	maps.Copy(fields, req.Context)
	if intent != nil {
		fields[ContextIntent] = intent.record
	} else {
		fields[ContextIntent] = newIntentRecord(req.Intent)
	}
	fields[ContextNow] = types.NewDatetimeFromMillis(key.now)
	if id := req.Identity; id != nil {
		fields[ContextIdentity] = id.record()
	}
	if req.Task != nil {
		fields[ContextTask] = req.Task.UID
	}
	rec := types.NewRecord(fields)
	if reuse && smallFields(req.Context) {
		intent.keep(&contextRecord{key: key, callerFields: len(req.Context), record: rec}, req.Context)
	}
	return rec, nil
}

func hasField(m types.RecordMap, k types.String) bool {
	_, ok := m[k]
	return ok
}

// intentRecords caches the context.intent records of intents without
// attributes (and without long strings, see entry), and with each the
// last contexts made with it. Callers repeat a few purposes, tools and
// task ids, and a record costs about ten allocations to build; records
// are immutable, so one may be shared by any number of decisions. It is
// bounded: emptied when full. A nil *intentRecords caches nothing.
type intentRecords struct {
	mu sync.RWMutex
	m  map[intentKey]*intentEntry
}

type intentKey struct{ purpose, taskID, tool string }

// intentEntry is an intent's record and the last contexts made with it:
// the last without caller fields and the last with some, because callers
// often send one intent both ways (a read, and the same read with a flag).
type intentEntry struct {
	record            types.Value
	bare, withCallers atomic.Pointer[contextRecord]
}

// contextKey is what, besides the intent and the caller's fields, a
// context is made of: context.now (milliseconds, as a Cedar datetime holds
// it), the identity (one record per verified token) and the task.
type contextKey struct {
	now      int64
	identity *Identity
	task     types.EntityUID
	hasTask  bool
}

// contextRecord is a context made for key with callerFields caller fields,
// which record holds: they are compared there, so nothing else is kept.
type contextRecord struct {
	key          contextKey
	callerFields int
	record       types.Record
}

// slot is where a context with caller's fields is kept.
func (e *intentEntry) slot(caller types.RecordMap) *atomic.Pointer[contextRecord] {
	if len(caller) == 0 {
		return &e.bare
	}
	return &e.withCallers
}

// recentContext returns the context last made for key with caller fields
// if they equal caller's (types.Value's Equal: exact, nested records and
// sets included).
func (e *intentEntry) recentContext(key contextKey, caller types.RecordMap) (types.Record, bool) {
	c := e.slot(caller).Load()
	if c != nil && c.key == key && c.callerFields == len(caller) && holdsFields(c.record, caller) {
		return c.record, true
	}
	return types.Record{}, false
}

// holdsFields says whether rec has every field of caller, with an equal
// value.
func holdsFields(rec types.Record, caller types.RecordMap) bool {
	for k, v := range caller {
		if kept, ok := rec.Get(k); !ok || !v.Equal(kept) {
			return false
		}
	}
	return true
}

// keep makes c the last context made with its caller fields (or none).
func (e *intentEntry) keep(c *contextRecord, caller types.RecordMap) {
	e.slot(caller).Store(c)
}

// A context's caller fields are kept with it only while they are small,
// so that the cache (at most maxIntentRecords intents, one context with
// caller fields each) stays small however large the contexts callers send:
// filled with the largest kept contexts of several shapes it held 21 to
// 34 MiB. Their size is estimated: a value's box and map slot, a record's
// or set's own map, and the bytes of names and strings.
const (
	maxKeptBytes   = 4096
	valueBytes     = 64
	containerBytes = 256
)

// smallFields says whether m's fields, nested values included, are
// estimated at most maxKeptBytes.
func smallFields(m types.RecordMap) bool {
	budget := maxKeptBytes
	for k, v := range m {
		budget -= len(k)
		if !charge(v, &budget) {
			return false
		}
	}
	return true
}

// charge takes v's estimated size from *budget and says whether some is
// left.
func charge(v types.Value, budget *int) bool {
	*budget -= valueBytes
	switch v := v.(type) {
	case types.String:
		*budget -= len(v)
	case types.EntityUID:
		*budget -= len(v.Type) + len(v.ID)
	case types.Record:
		*budget -= containerBytes
		for k, x := range v.All() {
			*budget -= len(k)
			if !charge(x, budget) {
				return false
			}
		}
	case types.Set:
		*budget -= containerBytes
		for x := range v.All() {
			if !charge(x, budget) {
				return false
			}
		}
	}
	return *budget >= 0
}

const maxIntentRecords = 4096

// entry returns in's cache entry, nil when c is nil, in has attributes or
// its strings are longer than maxKeptBytes (the cache is not to hold
// large inputs).
func (c *intentRecords) entry(in Intent) *intentEntry {
	if c == nil || len(in.Attributes) > 0 || len(in.Purpose)+len(in.TaskID)+len(in.Tool) > maxKeptBytes {
		return nil
	}
	k := intentKey{in.Purpose, in.TaskID, in.Tool}
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return e
	}
	e = &intentEntry{record: newIntentRecord(in)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxIntentRecords {
		c.m = make(map[intentKey]*intentEntry)
	}
	c.m[k] = e
	return e
}

func newIntentRecord(in Intent) types.Value {
	intent, _ := recordFields(4)
	defer putScratch(intent)
	intent["purpose"] = types.String(in.Purpose)
	intent["task_id"] = types.String(in.TaskID)
	intent["tool"] = types.String(in.Tool)
	intent["attributes"] = emptyRecord
	if len(in.Attributes) > 0 {
		intent["attributes"] = types.NewRecord(in.Attributes)
	}
	return types.NewRecord(intent)
}

// emptyRecord is an empty record, made (and boxed as a Value) once:
// records are immutable.
var emptyRecord types.Value = types.NewRecord(types.RecordMap{})

// scratchRecords hold the maps CedarContext builds small records from,
// of at most scratchFields entries. types.NewRecord's copy (maps.Clone)
// takes the capacity of the map it copies, and a map never shrinks: a
// scratch map that once held fifty fields would make every later record,
// however small, a table of 128 slots. Up to eight entries a map is one
// group.
var scratchRecords = sync.Pool{New: func() any { return make(types.RecordMap, scratchFields) }}

const scratchFields = 8

// recordFields returns an empty map for up to n fields: a scratch map
// (scratch true: put it back with putScratch) when n is at most
// scratchFields, else a new one.
func recordFields(n int) (m types.RecordMap, scratch bool) {
	if n > scratchFields {
		return make(types.RecordMap, n), false
	}
	return scratchRecords.Get().(types.RecordMap), true
}

func putScratch(m types.RecordMap) {
	clear(m)
	scratchRecords.Put(m)
}

func (id *Identity) record() types.Record {
	if r := id.rec.Load(); r != nil {
		return *r
	}
	rec := types.RecordMap{
		"issuer":     types.String(id.Issuer),
		"subject":    types.String(id.Subject),
		"spiffe_id":  types.String(id.SPIFFEID),
		"audience":   id.Audience,
		"expires_at": types.NewDatetime(id.ExpiresAt),
		"claims":     id.Claims,
		"caller":     types.String(id.Caller),
	}
	if id.Actor != nil {
		rec["actor"] = *id.Actor
	}
	r := types.NewRecord(rec)
	id.rec.Store(&r)
	return r
}

// Decision is the outcome of one request.
type Decision struct {
	Allow    bool
	Reasons  []Reason // sorted by policy id
	Errors   []EvalError
	Revision string
	// Ignored lists request entity data that was not used.
	Ignored []IgnoredEntity
	// WouldHave lists the log-only policies (see LogOnly) that would have
	// changed this decision had they been enforced, sorted; they never
	// appear in Reasons or Errors.
	WouldHave []string
}

// PolicyIDs are the ids of the determining policies, in order.
func (d Decision) PolicyIDs() []string {
	ids := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		ids[i] = r.PolicyID
	}
	return ids
}

// Reason is a determining policy.
type Reason struct {
	PolicyID    string
	Annotations map[string]string // shared with the snapshot: read only
}

// EvalError is a policy that failed to evaluate and was skipped.
type EvalError struct {
	PolicyID string
	Message  string
}

// IgnoredEntity is request entity data the bundle overrode, or that is of
// a type only the bundle defines.
type IgnoredEntity struct {
	UID    types.EntityUID
	Detail string
}

// EntityOverrideError rejects a request whose entities contradict the bundle
// when the request asked for RejectOverrides.
type EntityOverrideError struct {
	Ignored []IgnoredEntity
}

func (e *EntityOverrideError) Error() string {
	parts := make([]string, len(e.Ignored))
	for i, ig := range e.Ignored {
		parts[i] = fmt.Sprintf("%s: %s", ig.UID, ig.Detail)
	}
	return "request entities contradict the policy bundle: " + strings.Join(parts, "; ")
}

func (e *EntityOverrideError) Unwrap() error { return ErrInvalidRequest }

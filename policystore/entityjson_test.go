package policystore

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// readBoth reads entities.json both ways: with readEntities (fast says
// whether it could split the list at all) and with cedar-go alone. Each
// gives the entities of the store it builds, or its problems.
func readBoth(data []byte) (fast bool, got, want types.EntityMap, gotProblems, wantProblems []Problem) {
	b := newStoreBuilder(0)
	gotProblems, fast = readEntities(data, b)
	if fast && len(gotProblems) == 0 {
		if s, err := b.finish(); err == nil {
			got = s.Entities()
		}
	}
	c := &compiler{bundle: &Bundle{Files: map[string][]byte{EntitiesFile: data}}}
	if m := c.cedarEntities(nil); len(c.problems) == 0 {
		want = mustStore(m).Entities()
	}
	return fast, got, want, gotProblems, c.problems
}

// checkReadsAsCedar fails unless readEntities builds from data what
// cedar-go's decoding does, and reports the same problems; for data
// readEntities cannot split it leaves everything to cedar-go.
func checkReadsAsCedar(t *testing.T, name string, data []byte) (fast bool) {
	t.Helper()
	fast, got, want, gotProblems, wantProblems := readBoth(data)
	if !fast {
		return false
	}
	if !slices.Equal(gotProblems, wantProblems) {
		t.Fatalf("%s: problems %v, cedar-go's %v", name, gotProblems, wantProblems)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d entities, cedar-go's %d", name, len(got), len(want))
	}
	for uid, w := range want {
		if g, ok := got[uid]; !ok || !g.Equal(w) {
			t.Fatalf("%s: entity %s = %v, cedar-go's %v", name, uid, g, w)
		}
	}
	return true
}

// TestReadEntitiesAsCedar: the entities of the Cedar corpus, of generated
// graphs and of the edge cases below read as cedar-go reads them, with
// the same problems; the common shape is read without cedar-go.
func TestReadEntitiesAsCedar(t *testing.T) {
	t.Parallel()
	for name, data := range entityFixtures(t) {
		if !checkReadsAsCedar(t, name, data) && !strings.HasPrefix(name, "generated") {
			t.Errorf("%s: the corpus's entities were not split", name)
		}
	}
	for _, c := range entityJSONCases {
		checkReadsAsCedar(t, c, []byte(c))
	}
}

// entityJSONCases are entity lists at the edges of the subset readEntities
// decodes itself, and past them.
var entityJSONCases = []string{
	`[]`, ` [ ] `, `[`, `]`, `null`, `{}`, `[] []`, `[1]`, `[null]`, `[{}]`, `[{},]`, `[,]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}}]`,
	"\t[\r\n{ \"uid\" : { \"id\" : \"a\" , \"type\" : \"A\" } , \"parents\" : [ ] , \"attrs\" : { } , \"tags\" : { } } ]\n",
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}},{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}},{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"x":1}},{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"x":{"__extn":{"fn":"ip","arg":"1.2.3.4"}}}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"x":{"__entity":{"type":"A","id":"b"}}}},{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}}`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}}] x`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}},]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{}} {"uid":{"type":"A","id":"b"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"__entity":{"type":"A","id":"a"}},"parents":[{"__entity":{"type":"B","id":"b"}}],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a","x":1},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a","id":"b"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":1},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"","id":"a"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"if","id":"a"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A::B::C","id":"a"},"parents":[{"type":"A :: B","id":"p"}],"attrs":{}}]`,
	`[{"uid":{"type":"A::B::C","id":"a"},"parents":[{"type":"9A","id":"p"}],"attrs":{}}]`,
	`[{"UID":{"type":"A","id":"a"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"Type":"A","Id":"a"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{},"extra":[1,{"x":null}]}]`,
	`[{"uid":{"type":"A","id":"a"},"uid":{"type":"A","id":"b"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[]}]`,
	`[{"uid":null,"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":null,"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":null}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{},"tags":null}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[null],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[{"type":"B","id":"b"},{"type":"B","id":"b"},{"type":"A","id":"a"}],"attrs":{}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":0,"m":-1,"big":9223372036854775807,"small":-9223372036854775808}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":9223372036854775808}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":-9223372036854775809}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":-0}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":1.0}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":1e3}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":01}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":12345678901234567890}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"n":-}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"b":true,"c":false,"d":tru}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"b":trueish}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"x":null}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"s":[],"t":[1,1,"1",[true],{"a":[]}],"r":{},"q":{"type":"A","id":"x"}}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"x":1,"x":2}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"r":{"x":1,"x":2}}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"__entity":{"type":"A","id":"b"}}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"__extn":"x","y":1}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"e":{"__entity":{"type":"A","id":"b"}},"i":{"__extn":{"fn":"decimal","arg":"1.5"}}}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"i":{"__extn":{"fn":"nope","arg":"1.5"}}}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{},"tags":{"t":"v","u":{"x":[1]}}}]`,
	`[{"uid":{"type":"A","id":"a\"b\\c\u00e9\n"},"parents":[],"attrs":{"k\"":"v\/"}}]`,
	"[{\"uid\":{\"type\":\"A\",\"id\":\"h\xc3\xa9llo\"},\"parents\":[],\"attrs\":{\"\xe2\x82\xac\":\"\xf0\x9f\x98\x80\"}}]",
	"[{\"uid\":{\"type\":\"A\",\"id\":\"bad\xff\"},\"parents\":[],\"attrs\":{}}]",
	"[{\"uid\":{\"type\":\"A\",\"id\":\"a\"},\"parents\":[],\"attrs\":{\"k\":\"tab\tinside\"}}]",
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"deep":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":{"deep":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":` + manyMembers(maxRecordMembers+1) + `}]`,
	`[{"uid":{"type":"A","id":"a"},"parents":[],"attrs":` + manyMembers(maxRecordMembers) + `}]`,
}

func manyMembers(n int) string {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf(`"m%d":%d`, i, i)
	}
	return "{" + strings.Join(members, ",") + "}"
}

// TestReadEntitiesCommonShapeIsFast: entities of the shape bundles are
// written in are decoded without cedar-go.
func TestReadEntitiesCommonShapeIsFast(t *testing.T) {
	t.Parallel()
	for _, e := range []string{
		`{"uid":{"type":"Doc","id":"d1"},"parents":[{"type":"Folder","id":"f"}],"attrs":{"size":3,"labels":["a","b"],"owner":{"name":"x"}}}`,
		`{ "uid": {"id": "f", "type": "NS::Folder"}, "attrs": {}, "parents": [], "tags": {"k": "v"} }`,
		"{\"uid\":{\"type\":\"User\",\"id\":\"j\xc3\xa9r\xc3\xb4me\"},\"parents\":[],\"attrs\":{\"age\":-41,\"admin\":false}}",
	} {
		r := entityReader{in: []byte(e), types: map[string]types.EntityType{}}
		if _, ok := r.entity(); !ok || r.at != len(e) {
			t.Errorf("%s: left to cedar-go", e)
		}
		checkReadsAsCedar(t, e, []byte("["+e+"]"))
	}
}

// TestReadEntitiesBoundsLeaveToCedar: values nested deeper than maxDepth
// and records of more than maxRecordMembers members (whose names are
// compared pairwise) are left to cedar-go, so that the work of the fast
// reader per value stays bounded; at the bounds they are read fast.
func TestReadEntitiesBoundsLeaveToCedar(t *testing.T) {
	t.Parallel()
	entity := func(attrs string) string {
		return `{"uid":{"type":"A","id":"a"},"parents":[],"attrs":` + attrs + `}`
	}
	nested := func(depth int) string {
		return `{"deep":` + strings.Repeat(`[`, depth) + strings.Repeat(`]`, depth) + `}`
	}
	for _, c := range []struct {
		name  string
		attrs string
		fast  bool
	}{
		{"nested to maxDepth", nested(maxDepth), true},
		{"nested past maxDepth", nested(maxDepth + 1), false},
		{"maxRecordMembers members", manyMembers(maxRecordMembers), true},
		{"more members", manyMembers(maxRecordMembers + 1), false},
	} {
		r := entityReader{in: []byte(entity(c.attrs)), types: map[string]types.EntityType{}}
		if _, fast := r.entity(); fast != c.fast {
			t.Errorf("%s: read fast %v, want %v", c.name, fast, c.fast)
		}
		checkReadsAsCedar(t, c.name, []byte("["+entity(c.attrs)+"]"))
	}
}

// FuzzReadEntities: whatever entities.json holds, readEntities builds what
// cedar-go's decoding builds, or reports the same problems, never panics.
func FuzzReadEntities(f *testing.F) {
	for _, c := range entityJSONCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReadsAsCedar(t, "fuzz input", data)
	})
}

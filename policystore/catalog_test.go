package policystore_test

import (
	"context"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
)

func activateFS(t *testing.T, fsys fstest.MapFS) *policystore.Snapshot {
	t.Helper()
	b, err := policystore.LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policystore.NewStore().Activate(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func names(uids []types.EntityUID) []string {
	out := make([]string, len(uids))
	for i, u := range uids {
		out[i] = u.String()
	}
	return out
}

func TestActionsFromSchema(t *testing.T) {
	t.Parallel()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policystore.NewStore().Activate(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		principal, resource types.EntityType
		want                []string
	}{
		{"Agent", "Repository", []string{`Action::"comment_issue"`, `Action::"list_issues"`, `Action::"open_pull_request"`, `Action::"read_file"`, `Action::"search_code"`, `Action::"write_file"`}},
		{"Agent", "Secret", []string{`Action::"read_secret"`}},
		{"Team", "Secret", []string{}},
		{"Agent", "", []string{`Action::"comment_issue"`, `Action::"deploy_service"`, `Action::"list_issues"`, `Action::"open_pull_request"`, `Action::"read_file"`, `Action::"read_secret"`, `Action::"rollback_service"`, `Action::"search_code"`, `Action::"write_file"`}},
	}
	for _, tt := range tests {
		if got := names(snap.Actions(tt.principal, tt.resource)); !slices.Equal(got, tt.want) {
			t.Errorf("Actions(%s, %s) = %v, want %v", tt.principal, tt.resource, got, tt.want)
		}
	}
}

func TestActionsWithoutSchema(t *testing.T) {
	t.Parallel()
	snap := activateFS(t, fstest.MapFS{
		"policies.cedar": {Data: []byte(`
			permit (principal, action == Action::"a", resource);
			permit (principal, action in [Action::"b", Action::"c"], resource);
			forbid (principal, action in Action::"group", resource);
			permit (principal, action, resource);`)},
		"entities.json": {Data: []byte(`[{"uid": {"type": "Action", "id": "d"}, "attrs": {}, "parents": []}]`)},
	})
	want := []string{`Action::"a"`, `Action::"b"`, `Action::"c"`, `Action::"d"`, `Action::"group"`}
	if got := names(snap.Actions("User", "Doc")); !slices.Equal(got, want) {
		t.Errorf("Actions = %v, want %v", got, want)
	}
}

func TestEntitiesOfType(t *testing.T) {
	t.Parallel()
	snap := activateFS(t, fstest.MapFS{
		"policies.cedar": {Data: []byte(`permit (principal, action, resource);`)},
		"entities.json": {Data: []byte(`[
			{"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": []},
			{"uid": {"type": "Group", "id": "admins"}, "attrs": {}, "parents": []},
			{"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": []}]`)},
	})
	want := []string{`User::"alice"`, `User::"bob"`}
	if got := names(snap.EntitiesOfType("User")); !slices.Equal(got, want) {
		t.Errorf("EntitiesOfType(User) = %v, want %v", got, want)
	}
	if got := snap.EntitiesOfType("Nobody"); len(got) != 0 {
		t.Errorf("EntitiesOfType(Nobody) = %v", got)
	}
}

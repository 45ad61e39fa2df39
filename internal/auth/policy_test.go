package auth

import (
	"testing"

	"github.com/liverelay/liverelay/internal/store"
)

func TestAllowed(t *testing.T) {
	projA := &store.Project{ID: "pa", AccountID: "A"}
	projA2 := &store.Project{ID: "pa2", AccountID: "A"}
	projB := &store.Project{ID: "pb", AccountID: "B"}
	root := &store.Credential{AccountID: "A", Root: true}
	all := &store.Credential{AccountID: "A", Actions: []string{ActionAll}}
	lister := &store.Credential{AccountID: "A", Actions: []string{ActionList}}
	streamAll := &store.Credential{AccountID: "A", Actions: []string{"live:stream:*"}}
	otherService := &store.Credential{AccountID: "A", Actions: []string{"vod:*:*"}}
	limited := &store.Credential{AccountID: "A", ProjectIDs: []string{"pa2"}, Actions: []string{ActionCreate, ActionList}}
	none := &store.Credential{AccountID: "A"}
	revokedRoot := &store.Credential{AccountID: "A", Root: true, Revoked: true}
	oddAction := &store.Credential{AccountID: "A", Actions: []string{"live:stream", "live:stream:createPullTask:x", ""}}

	tests := []struct {
		name    string
		c       *store.Credential
		project string
		p       *store.Project
		action  string
		want    bool
	}{
		{"root, own project, any action", root, "pa", projA, ActionDelete, true},
		{"root, other account", root, "pb", projB, ActionList, false},
		{"root, no such project", root, "px", nil, ActionList, false},
		{"root revoked", revokedRoot, "pa", projA, ActionList, false},
		{"live:*:* user", all, "pa", projA, ActionModify, true},
		{"live:*:* user, other account", all, "pb", projB, ActionModify, false},
		{"list-only user lists", lister, "pa", projA, ActionList, true},
		{"list-only user creates", lister, "pa", projA, ActionCreate, false},
		{"live:stream:* user", streamAll, "pa", projA, ActionDelete, true},
		{"other service's wildcard", otherService, "pa", projA, ActionList, false},
		{"project-limited user, its project", limited, "pa2", projA2, ActionCreate, true},
		{"project-limited user, other project of its account", limited, "pa", projA, ActionCreate, false},
		{"project-limited user, action not granted", limited, "pa2", projA2, ActionDelete, false},
		{"user without actions", none, "pa", projA, ActionList, false},
		{"malformed grants", oddAction, "pa", projA, ActionCreate, false},
		{"project record for another id", root, "pa2", projA, ActionList, false},
		{"no credential", nil, "pa", projA, ActionList, false},
		{"empty action", root, "pa", projA, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Allowed(tt.c, tt.project, tt.p, tt.action); got != tt.want {
				t.Fatalf("Allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

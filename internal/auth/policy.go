package auth

import (
	"slices"
	"strings"

	"github.com/liverelay/liverelay/internal/store"
)

// Allowed reports whether credential c may perform action on the project
// projectID, where p is that project as stored (nil when there is none).
// A project of another account, or none, is refused the same way, so the
// answer never tells whether it exists. The account's root user may do
// everything in the account's projects; other users need the action (or a
// pattern such as live:*:* that matches it) and, when their key is limited
// to some projects, this one among them.
func Allowed(c *store.Credential, projectID string, p *store.Project, action string) bool {
	if c == nil || c.Revoked || p == nil || action == "" {
		return false
	}
	if p.ID != projectID || p.AccountID == "" || p.AccountID != c.AccountID {
		return false
	}
	if c.Root {
		return true
	}
	if len(c.ProjectIDs) > 0 && !slices.Contains(c.ProjectIDs, projectID) {
		return false
	}
	return slices.ContainsFunc(c.Actions, func(granted string) bool {
		return actionMatches(granted, action)
	})
}

// actionMatches compares IAM actions service:resource:verb part by part; a
// granted part "*" matches any part.
func actionMatches(granted, action string) bool {
	g := strings.Split(granted, ":")
	a := strings.Split(action, ":")
	if len(g) != 3 || len(a) != 3 {
		return false
	}
	for i := range g {
		if g[i] != "*" && g[i] != a[i] {
			return false
		}
	}
	return true
}

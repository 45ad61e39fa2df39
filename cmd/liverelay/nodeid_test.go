package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveNodeID(t *testing.T) {
	dir := t.TempDir()
	first, err := resolveNodeID("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !validNodeID.MatchString(first) || !strings.Contains(first, "-") {
		t.Fatalf("generated node ID %q", first)
	}
	again, err := resolveNodeID("", dir)
	if err != nil || again != first {
		t.Fatalf("second start: %q, %v; want the kept %q", again, err, first)
	}
	if other, _ := resolveNodeID("", t.TempDir()); other == first {
		t.Fatalf("two data directories got the same node ID %q", other)
	}
	if got, err := resolveNodeID("edge-7.paris", dir); err != nil || got != "edge-7.paris" {
		t.Fatalf("--node-id edge-7.paris: %q, %v", got, err)
	}
	for _, bad := range []string{"-x", "a b", strings.Repeat("a", 65), "né", "a/b"} {
		if _, err := resolveNodeID(bad, dir); err == nil || !strings.Contains(err.Error(), "--node-id") {
			t.Errorf("--node-id %q: %v, want an error naming the flag", bad, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("not an id!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveNodeID("", dir); err == nil || !strings.Contains(err.Error(), nodeIDFile) {
		t.Fatalf("a garbled node-id file: %v, want an error naming it", err)
	}
}

package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// nodeIDFile keeps a generated node ID in the data directory, so a node
// keeps its ID across restarts.
const nodeIDFile = "node-id"

// validNodeID is what a node ID may look like: it goes into logs, JSON and
// the store, never into a shell.
var validNodeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// resolveNodeID returns the node's ID: the one given (--node-id), else the
// one kept in dataDir, else a new one (the host name and a random suffix),
// which it keeps there.
func resolveNodeID(given, dataDir string) (string, error) {
	if given != "" {
		if !validNodeID.MatchString(given) {
			return "", fmt.Errorf("--node-id %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", given)
		}
		return given, nil
	}
	path := filepath.Join(dataDir, nodeIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !validNodeID.MatchString(id) {
			return "", fmt.Errorf("%s holds %q, not a node ID: remove the file to generate a new one, or set --node-id", path, id)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read node ID: %w", err)
	}
	id := newNodeID()
	if err := writeFileAtomicBytes(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("keep node ID: %w", err)
	}
	return id, nil
}

// newNodeID returns "<host>-<8 hex digits>": the host name says where a
// node runs, the suffix keeps two nodes of one host apart.
func newNodeID() string {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	host = strings.Trim(b.String(), "-")
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "node"
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return host + "-" + hex.EncodeToString(suffix)
}

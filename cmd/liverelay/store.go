package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/liverelay/liverelay/internal/redact"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/postgres"
	"github.com/liverelay/liverelay/internal/store/sqlite"
)

// storeFileName is the SQLite file in the data directory.
const storeFileName = "liverelay.db"

const storeUsage = "the store: empty for the embedded SQLite file in --data-dir, or a PostgreSQL URL postgres://user:pass@host:port/db (nodes sharing one database share their tasks)"

// openStore opens the store --store names: PostgreSQL for a postgres:// URL,
// else the SQLite file of dataDir. With mustExist, a SQLite file that is not
// there yet is an error (the iam commands must not create an empty store in
// a mistyped directory).
func openStore(ctx context.Context, storeURL, dataDir string, mustExist bool) (store.Store, error) {
	if strings.HasPrefix(storeURL, "postgres://") || strings.HasPrefix(storeURL, "postgresql://") {
		st, err := postgres.Open(ctx, storeURL)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", redact.URL(storeURL), err)
		}
		return st, nil
	}
	if storeURL != "" {
		return nil, fmt.Errorf("--store must be empty (SQLite in --data-dir) or a postgres:// URL, got %q", redact.URL(storeURL))
	}
	path := filepath.Join(dataDir, storeFileName)
	if mustExist {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--data-dir %s holds no liverelay store (%s): start liverelay serve with this --data-dir first, or correct it", dataDir, storeFileName)
		} else if err != nil {
			return nil, fmt.Errorf("--data-dir: %w", err)
		}
	}
	st, err := sqlite.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/store"
)

const bootstrapFile = "bootstrap.json"

// bootstrapCreds is what a new user needs to make the first call.
type bootstrapCreds struct {
	ProjectID string `json:"project_id"`
	Region    string `json:"region"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// bootstrap makes sure there is a project to call the API with.
//
// With LIVERELAY_BOOTSTRAP_PROJECT_ID, _ACCESS_KEY and _SECRET_KEY set, that
// project exists in the default region with a root credential of that key
// pair. With none set and an empty store, it generates a project and a key
// pair, prints them once, and writes them to <data-dir>/bootstrap.json
// (mode 0600).
func bootstrap(ctx context.Context, st store.Store, keyring *auth.Keyring, dataDir, region string, out io.Writer, log *slog.Logger) error {
	env := map[string]string{}
	var missing []string
	for _, k := range []string{"PROJECT_ID", "ACCESS_KEY", "SECRET_KEY"} {
		name := "LIVERELAY_BOOTSTRAP_" + k
		if v := os.Getenv(name); v != "" {
			env[k] = v
		} else {
			missing = append(missing, name)
		}
	}
	if len(env) > 0 && len(missing) > 0 {
		return fmt.Errorf("set all three bootstrap variables or none; missing %s", strings.Join(missing, ", "))
	}

	var creds bootstrapCreds
	generated := false
	if len(env) == 3 {
		creds = bootstrapCreds{ProjectID: env["PROJECT_ID"], Region: region, AccessKey: env["ACCESS_KEY"], SecretKey: env["SECRET_KEY"]}
	} else {
		n, err := st.CountProjects(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		ak, sk := auth.NewAccessKey()
		creds = bootstrapCreds{ProjectID: newProjectID(), Region: region, AccessKey: ak, SecretKey: sk}
		generated = true
	}

	if p, err := st.GetProject(ctx, creds.ProjectID); err == nil {
		creds.Region = p.Region // an existing project keeps its region
	}
	now := time.Now().UTC()
	if err := st.PutProject(ctx, &store.Project{ID: creds.ProjectID, AccountID: creds.ProjectID, Region: creds.Region, CreateTime: now}); err != nil {
		return err
	}
	if _, err := st.GetCredential(ctx, creds.AccessKey); err == nil {
		// The key exists: keep it as it is (a revoked key stays revoked).
		log.Info("bootstrap project ready", "project_id", creds.ProjectID, "access_key", creds.AccessKey)
		return nil
	} else if !errors.Is(err, store.ErrCredentialUnknown) && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	sealed, err := keyring.Seal([]byte(creds.SecretKey))
	if err != nil {
		return err
	}
	err = st.PutCredential(ctx, &store.Credential{
		AccessKey: creds.AccessKey, SecretKey: sealed, UserID: "root", AccountID: creds.ProjectID,
		ProjectIDs: []string{creds.ProjectID}, Actions: []string{auth.ActionAll}, Root: true, CreateTime: now,
	})
	if err != nil {
		return err
	}
	if !generated {
		log.Info("bootstrap project ready", "project_id", creds.ProjectID, "access_key", creds.AccessKey)
		return nil
	}

	path := filepath.Join(dataDir, bootstrapFile)
	if err := writeFileAtomic(path, creds, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, `liverelay: created a project and a root access key (shown once; also in %s, mode 0600)
  project_id: %s
  region:     %s
  access_key: %s
  secret_key: %s
`, path, creds.ProjectID, creds.Region, creds.AccessKey, creds.SecretKey)
	return nil
}

// newProjectID returns 32 hex characters, the shape of the cloud's project IDs.
func newProjectID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// writeFileAtomic writes v as JSON to a temporary file and renames it into
// place, so a crash never leaves half a file.
func writeFileAtomic(path string, v any, mode os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomicBytes(path, append(data, '\n'), mode)
}

// writeFileAtomicBytes writes data to a temporary file beside path, syncs
// it and renames it into place.
func writeFileAtomicBytes(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

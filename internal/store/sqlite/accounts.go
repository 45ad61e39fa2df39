package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/liverelay/liverelay/internal/store"
)

// PutProject implements store.Store: an existing project is kept as it is.
func (s *Store) PutProject(ctx context.Context, p *store.Project) error {
	key := p.CallbackKey
	if key == nil {
		key = []byte{} // the driver would bind nil as NULL
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO projects (id, account_id, region, create_time, callback_key) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, p.ID, p.AccountID, p.Region, msOrNull(p.CreateTime), key)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put project %s: %w", p.ID, err)
	}
	return nil
}

// GetProject implements store.Store.
func (s *Store) GetProject(ctx context.Context, id string) (*store.Project, error) {
	var p store.Project
	var created sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT id, account_id, region, create_time, callback_key FROM projects WHERE id = ?`, id).
		Scan(&p.ID, &p.AccountID, &p.Region, &created, &p.CallbackKey)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrProjectNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get project %s: %w", id, err)
	}
	p.CreateTime = timeFromMS(created)
	if len(p.CallbackKey) == 0 {
		p.CallbackKey = nil
	}
	return &p, nil
}

// SetProjectCallbackKey implements store.Store.
func (s *Store) SetProjectCallbackKey(ctx context.Context, projectID string, sealed []byte) error {
	if sealed == nil {
		sealed = []byte{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE projects SET callback_key = ? WHERE id = ?`, sealed, projectID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrProjectNotFound
		}
		return nil
	})
	if err != nil {
		// The key never appears in an error.
		return fmt.Errorf("sqlite: set callback key of project %s: %w", projectID, err)
	}
	return nil
}

// CountProjects implements store.Store.
func (s *Store) CountProjects(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM projects`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count projects: %w", err)
	}
	return n, nil
}

// PutCredential implements store.Store.
func (s *Store) PutCredential(ctx context.Context, c *store.Credential) error {
	secret := c.SecretKey
	if secret == nil {
		secret = []byte{} // the driver would bind nil as NULL
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO credentials
			(access_key, secret_key, user_id, account_id, project_ids, actions, root, revoked, create_time)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (access_key) DO UPDATE SET
				secret_key = excluded.secret_key, user_id = excluded.user_id, account_id = excluded.account_id,
				project_ids = excluded.project_ids, actions = excluded.actions, root = excluded.root,
				revoked = excluded.revoked, create_time = excluded.create_time`,
			c.AccessKey, secret, c.UserID, c.AccountID, listJSON(c.ProjectIDs), listJSON(c.Actions),
			c.Root, c.Revoked, msOrNull(c.CreateTime))
		return err
	})
	if err != nil {
		// The access key is an identifier, not a secret; the secret key never
		// appears in an error.
		return fmt.Errorf("sqlite: put credential %s: %w", c.AccessKey, err)
	}
	return nil
}

// GetCredential implements store.Store.
func (s *Store) GetCredential(ctx context.Context, accessKey string) (*store.Credential, error) {
	c, err := s.getCredential(ctx, accessKey)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get credential %s: %w", accessKey, err)
	}
	return c, nil
}

func (s *Store) getCredential(ctx context.Context, accessKey string) (*store.Credential, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE access_key = ?`, accessKey)
	c, err := scanCredential(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrCredentialUnknown
	}
	return c, err
}

// ListCredentials implements store.Store.
func (s *Store) ListCredentials(ctx context.Context) ([]store.Credential, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+credentialColumns+` FROM credentials ORDER BY access_key`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list credentials: %w", err)
	}
	defer rows.Close()
	var out []store.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list credentials: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list credentials: %w", err)
	}
	return out, nil
}

const credentialColumns = `access_key, secret_key, user_id, account_id, project_ids, actions, root, revoked, create_time`

// scanCredential reads one row of credentialColumns.
func scanCredential(row interface{ Scan(dest ...any) error }) (*store.Credential, error) {
	var c store.Credential
	var projects, actions string
	var created sql.NullInt64
	err := row.Scan(&c.AccessKey, &c.SecretKey, &c.UserID, &c.AccountID, &projects, &actions, &c.Root, &c.Revoked, &created)
	if err != nil {
		return nil, err
	}
	if c.ProjectIDs, err = listFromJSON("project_ids", projects); err != nil {
		return nil, err
	}
	if c.Actions, err = listFromJSON("actions", actions); err != nil {
		return nil, err
	}
	c.CreateTime = timeFromMS(created)
	return &c, nil
}

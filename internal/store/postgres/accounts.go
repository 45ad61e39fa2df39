package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/liverelay/liverelay/internal/store"
)

// PutProject implements store.Store: an existing project is kept as it is.
func (s *Store) PutProject(ctx context.Context, p *store.Project) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO projects (id, account_id, region, create_time, callback_key)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
			p.ID, p.AccountID, p.Region, timeArg(p.CreateTime), bytesArg(p.CallbackKey))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put project %s: %w", p.ID, err)
	}
	return nil
}

// GetProject implements store.Store.
func (s *Store) GetProject(ctx context.Context, id string) (*store.Project, error) {
	var p store.Project
	var created pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `SELECT id, account_id, region, create_time, callback_key FROM projects WHERE id = $1`, id).
		Scan(&p.ID, &p.AccountID, &p.Region, &created, &p.CallbackKey)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrProjectNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get project %s: %w", id, err)
	}
	p.CreateTime = timeOf(created)
	if len(p.CallbackKey) == 0 {
		p.CallbackKey = nil
	}
	return &p, nil
}

// SetProjectCallbackKey implements store.Store.
func (s *Store) SetProjectCallbackKey(ctx context.Context, projectID string, sealed []byte) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE projects SET callback_key = $1 WHERE id = $2`, bytesArg(sealed), projectID)
		if err == nil && tag.RowsAffected() == 0 {
			err = store.ErrProjectNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: set callback key of project %s: %w", projectID, err)
	}
	return nil
}

// CountProjects implements store.Store.
func (s *Store) CountProjects(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM projects`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count projects: %w", err)
	}
	return n, nil
}

// PutCredential implements store.Store.
func (s *Store) PutCredential(ctx context.Context, c *store.Credential) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO credentials
			(access_key, secret_key, user_id, account_id, project_ids, actions, root, revoked, create_time)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (access_key) DO UPDATE SET
				secret_key = excluded.secret_key, user_id = excluded.user_id, account_id = excluded.account_id,
				project_ids = excluded.project_ids, actions = excluded.actions, root = excluded.root,
				revoked = excluded.revoked, create_time = excluded.create_time`,
			c.AccessKey, bytesArg(c.SecretKey), c.UserID, c.AccountID, listArg(c.ProjectIDs), listArg(c.Actions),
			c.Root, c.Revoked, timeArg(c.CreateTime))
		return err
	})
	if err != nil {
		// The access key is an identifier, not a secret; the secret key never
		// appears in an error.
		return fmt.Errorf("postgres: put credential %s: %w", c.AccessKey, err)
	}
	return nil
}

// GetCredential implements store.Store.
func (s *Store) GetCredential(ctx context.Context, accessKey string) (*store.Credential, error) {
	c, err := scanCredential(s.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE access_key = $1`, accessKey))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrCredentialUnknown
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get credential %s: %w", accessKey, err)
	}
	return &c, nil
}

// ListCredentials implements store.Store.
func (s *Store) ListCredentials(ctx context.Context) ([]store.Credential, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials ORDER BY access_key`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list credentials: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Credential, error) { return scanCredential(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list credentials: %w", err)
	}
	return out, nil
}

const credentialColumns = `access_key, secret_key, user_id, account_id, project_ids, actions, root, revoked, create_time`

// scanCredential reads one row of credentialColumns.
func scanCredential(row pgx.Row) (store.Credential, error) {
	var c store.Credential
	var created pgtype.Timestamptz
	err := row.Scan(&c.AccessKey, &c.SecretKey, &c.UserID, &c.AccountID, &c.ProjectIDs, &c.Actions, &c.Root, &c.Revoked, &created)
	if err != nil {
		return c, err
	}
	c.ProjectIDs, c.Actions = listOf(c.ProjectIDs), listOf(c.Actions)
	c.CreateTime = timeOf(created)
	return c, nil
}

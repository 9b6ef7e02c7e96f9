package grants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// channel is the LISTEN/NOTIFY channel of grant changes; a notification's
// payload is the task id that changed.
const channel = "intentpdp_grants"

// schemaLock is the advisory lock that serialises replicas creating the
// schema at once.
const schemaLock = 7_170_001

const schema = `
CREATE TABLE IF NOT EXISTS intentpdp_grants (
  task_id      text PRIMARY KEY,
  grant_id     text NOT NULL,
  content      jsonb NOT NULL,
  assignee     text NOT NULL,
  approved_by  text NOT NULL,
  on_behalf_of text NOT NULL,
  not_before   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  max_uses     bigint NOT NULL,
  uses_left    bigint NOT NULL,
  created_at   timestamptz NOT NULL,
  revoked_at   timestamptz
);
CREATE OR REPLACE FUNCTION intentpdp_grants_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('intentpdp_grants', OLD.task_id);
    RETURN OLD;
  END IF;
  PERFORM pg_notify('intentpdp_grants', NEW.task_id);
  RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER intentpdp_grants_notify
  AFTER INSERT OR UPDATE OR DELETE ON intentpdp_grants
  FOR EACH ROW EXECUTE FUNCTION intentpdp_grants_notify();
`

const columns = `task_id, grant_id, content, not_before, expires_at, max_uses, uses_left, created_at, revoked_at`

// postgres is the shared backend: one table, a trigger that notifies every
// change, and a follower per replica (see follow).
type postgres struct {
	pool *pgxpool.Pool
	dsn  string
}

// OpenPostgres connects to the PostgreSQL database at dsn, creates the
// grant table if needed and returns a store that is a replica of it: it
// holds every grant in memory, so decisions never query the database, and
// follows changes once Run is called. Until the first full sync (in Run)
// and whenever the database has been out of reach for longer than the
// staleness bound, it serves no grant (state stale).
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("grant store: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("grant store: create schema: %w", err)
	}
	s := NewMemory(opts...)
	s.shared = &postgres{pool: pool, dsn: dsn}
	return s, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLock); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, schema); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Run follows the shared backend (a full resync on every (re)connect,
// then notifications and a heartbeat) and sweeps ended grants, until ctx
// ends. For the memory store it only sweeps.
func (s *Store) Run(ctx context.Context) {
	if pg, ok := s.shared.(*postgres); ok {
		go s.follow(ctx, pg)
	}
	s.RunSweeper(ctx)
}

// Close releases the shared backend's connections.
func (s *Store) Close() {
	if pg, ok := s.shared.(*postgres); ok {
		pg.pool.Close()
	}
}

// follow keeps the index a replica of the table until ctx ends.
func (s *Store) follow(ctx context.Context, pg *postgres) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.session(ctx, pg)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("grant store: lost the database; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// session is one connection: LISTEN, then a full resync (so no change
// between the two is missed), then every notification applied as it
// comes. A heartbeat every quarter of the staleness bound confirms contact;
// a replica that went stale resyncs fully before serving grants again.
func (s *Store) session(ctx context.Context, pg *postgres) error {
	conn, err := pgx.Connect(ctx, pg.dsn)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	if err := s.resync(ctx, conn); err != nil {
		return err
	}
	s.log.Info("grant store: synced with the database", "grants", s.count())
	beat := max(s.maxStaleness/4, 10*time.Millisecond)
	for {
		wctx, cancel := context.WithTimeout(ctx, beat)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded):
			if err := s.heartbeat(ctx, conn, beat); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if err := s.refresh(ctx, conn, n.Payload); err != nil {
				return err
			}
			if s.stale(s.now()) {
				if err := s.resync(ctx, conn); err != nil {
					return err
				}
			}
			s.touch()
		}
	}
}

func (s *Store) heartbeat(ctx context.Context, conn *pgx.Conn, timeout time.Duration) error {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := conn.Exec(hctx, "SELECT 1"); err != nil {
		return err
	}
	if s.stale(s.now()) {
		return s.resync(ctx, conn)
	}
	s.touch()
	return nil
}

func (s *Store) touch() { s.contact.Store(s.now().UnixNano()) }

func (s *Store) count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.grants)
}

// resync replaces the index with the whole table.
func (s *Store) resync(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT `+columns+` FROM intentpdp_grants`)
	if err != nil {
		return err
	}
	all, err := pgx.CollectRows(rows, scanGrant)
	if err != nil {
		return err
	}
	s.replace(all)
	s.touch()
	return nil
}

// refresh reads the row of one notification.
func (s *Store) refresh(ctx context.Context, conn *pgx.Conn, taskID string) error {
	rows, err := conn.Query(ctx, `SELECT `+columns+` FROM intentpdp_grants WHERE task_id = $1`, taskID)
	if err != nil {
		return err
	}
	g, err := pgx.CollectExactlyOneRow(rows, scanGrant)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		s.forget(taskID, "")
		return nil
	case err != nil:
		return err
	}
	s.apply(g)
	return nil
}

// content is the JSON column of what a grant says.
type content struct {
	Assignee   types.EntityUID   `json:"assignee"`
	Actions    []types.EntityUID `json:"actions"`
	Scope      []types.EntityUID `json:"scope"`
	Purpose    string            `json:"purpose"`
	ApprovedBy types.EntityUID   `json:"approved_by"`
	OnBehalfOf *types.EntityUID  `json:"on_behalf_of,omitempty"`
	Attributes types.Record      `json:"attributes"`
}

func scanGrant(row pgx.CollectableRow) (Grant, error) {
	var (
		g       Grant
		raw     []byte
		revoked *time.Time
	)
	if err := row.Scan(&g.TaskID, &g.ID, &raw, &g.NotBefore, &g.ExpiresAt, &g.MaxUses, &g.UsesLeft, &g.CreatedAt, &revoked); err != nil {
		return Grant{}, err
	}
	var c content
	if err := json.Unmarshal(raw, &c); err != nil {
		return Grant{}, fmt.Errorf("grant %s: %w", g.TaskID, err)
	}
	g.Assignee, g.Actions, g.Scope, g.Purpose, g.ApprovedBy = c.Assignee, c.Actions, c.Scope, c.Purpose, c.ApprovedBy
	if c.OnBehalfOf != nil {
		g.OnBehalfOf = *c.OnBehalfOf
	}
	g.Attributes = c.Attributes.Map()
	if g.Attributes == nil {
		g.Attributes = types.RecordMap{}
	}
	if revoked != nil {
		g.RevokedAt = *revoked
	}
	return g, nil
}

func uidText(u types.EntityUID) string {
	if u.Type == "" {
		return ""
	}
	return u.String()
}

func (pg *postgres) create(ctx context.Context, g Grant, now time.Time) (Grant, error) {
	c := content{Assignee: g.Assignee, Actions: g.Actions, Scope: g.Scope, Purpose: g.Purpose,
		ApprovedBy: g.ApprovedBy, Attributes: types.NewRecord(g.Attributes)}
	if g.OnBehalfOf.Type != "" {
		c.OnBehalfOf = &g.OnBehalfOf
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return Grant{}, err
	}
	// A task id may be granted anew once its grant has ended.
	rows, err := pg.pool.Query(ctx, `
INSERT INTO intentpdp_grants (task_id, grant_id, content, assignee, approved_by, on_behalf_of,
  not_before, expires_at, max_uses, uses_left, created_at, revoked_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, NULL)
ON CONFLICT (task_id) DO UPDATE SET grant_id = EXCLUDED.grant_id, content = EXCLUDED.content,
  assignee = EXCLUDED.assignee, approved_by = EXCLUDED.approved_by, on_behalf_of = EXCLUDED.on_behalf_of,
  not_before = EXCLUDED.not_before, expires_at = EXCLUDED.expires_at, max_uses = EXCLUDED.max_uses,
  uses_left = EXCLUDED.uses_left, created_at = EXCLUDED.created_at, revoked_at = NULL
WHERE intentpdp_grants.revoked_at IS NOT NULL OR intentpdp_grants.expires_at <= $11
  OR (intentpdp_grants.max_uses > 0 AND intentpdp_grants.uses_left <= 0)
RETURNING `+columns,
		g.TaskID, g.ID, raw, uidText(g.Assignee), uidText(g.ApprovedBy), uidText(g.OnBehalfOf),
		g.NotBefore, g.ExpiresAt, g.MaxUses, g.CreatedAt, now)
	if err != nil {
		return Grant{}, unavailable(err)
	}
	stored, err := pgx.CollectExactlyOneRow(rows, scanGrant)
	if errors.Is(err, pgx.ErrNoRows) {
		return Grant{}, fmt.Errorf("%w: %s", ErrExists, g.TaskID)
	}
	return stored, unavailable(err)
}

func (pg *postgres) revoke(ctx context.Context, taskID string, at time.Time) (Grant, error) {
	rows, err := pg.pool.Query(ctx, `UPDATE intentpdp_grants SET revoked_at = coalesce(revoked_at, $2)
WHERE task_id = $1 RETURNING `+columns, taskID, at)
	if err != nil {
		return Grant{}, unavailable(err)
	}
	g, err := pgx.CollectExactlyOneRow(rows, scanGrant)
	if errors.Is(err, pgx.ErrNoRows) {
		return Grant{}, fmt.Errorf("%w: %s", ErrNotFound, taskID)
	}
	return g, unavailable(err)
}

func (pg *postgres) revokePrincipal(ctx context.Context, p types.EntityUID, at time.Time) ([]Grant, error) {
	rows, err := pg.pool.Query(ctx, `UPDATE intentpdp_grants SET revoked_at = $2
WHERE revoked_at IS NULL AND expires_at > $2 AND NOT (max_uses > 0 AND uses_left <= 0)
  AND (assignee = $1 OR approved_by = $1 OR on_behalf_of = $1)
RETURNING `+columns, p.String(), at)
	if err != nil {
		return nil, unavailable(err)
	}
	gs, err := pgx.CollectRows(rows, scanGrant)
	return gs, unavailable(err)
}

func (pg *postgres) consume(ctx context.Context, g *Grant, now time.Time) (Grant, error) {
	rows, err := pg.pool.Query(ctx, `UPDATE intentpdp_grants SET uses_left = uses_left - 1
WHERE task_id = $1 AND grant_id = $2 AND revoked_at IS NULL AND not_before <= $3 AND expires_at > $3
  AND uses_left > 0
RETURNING `+columns, g.TaskID, g.ID, now)
	if err != nil {
		return Grant{}, unavailable(err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, scanGrant)
	if errors.Is(err, pgx.ErrNoRows) {
		return Grant{}, errUsedUp
	}
	return out, unavailable(err)
}

func (pg *postgres) sweep(ctx context.Context, before time.Time) error {
	_, err := pg.pool.Exec(ctx, `DELETE FROM intentpdp_grants WHERE coalesce(revoked_at, expires_at) < $1`, before)
	return unavailable(err)
}

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

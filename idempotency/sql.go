package idempotency

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rebound-go/rebound"
)

// Dialect selects the SQL flavour of an SQLStore.
type Dialect int

const (
	// SQLite is for modernc.org/sqlite (driver "sqlite"); open it in WAL
	// mode with a busy timeout, e.g.
	// "file:PATH?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)", and
	// Ping it at start: SQLite does not wait while it switches a new file to
	// WAL, so processes that first connect to a new file at once can get
	// SQLITE_BUSY.
	SQLite Dialect = iota + 1
	// Postgres is for PostgreSQL through database/sql, e.g. with
	// github.com/jackc/pgx/v5/stdlib (driver "pgx").
	Postgres
)

// DefaultTable is the table an SQLStore uses when none is given.
const DefaultTable = "rebound_idempotency"

// schemaVersion is the version of the table layout below, kept in the
// <table>_meta table so that a later layout can migrate or refuse.
const schemaVersion = 1

// Record states in the state column.
const (
	sqlInFlight  = 1
	sqlDone      = 2
	sqlNotStored = 3
)

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// SQLStore is a Store in an SQL database through database/sql: SQLite for
// one machine (records survive a restart), PostgreSQL for many servers that
// share keys. Claims are atomic across processes: a SELECT answers replays
// and conflicts without writing; a free key is then taken by
// INSERT ... ON CONFLICT DO NOTHING, or an expired or abandoned record by a
// conditional UPDATE. Each statement is atomic on its own, so no
// transaction is held open. The table is created on first use. SQLStore is
// safe for concurrent use.
type SQLStore struct {
	db      *sql.DB
	dialect Dialect
	table   string

	initMu sync.Mutex
	inited bool

	qInsert, qTakeover, qSelect, qComplete, qRelease, qPrune string
}

// NewSQLStore returns a store that keeps its records in table (DefaultTable
// if empty; "schema.table" is allowed) of db, or a *rebound.ConfigError if
// db is nil, dialect is unknown or table is not a plain SQL identifier.
func NewSQLStore(db *sql.DB, dialect Dialect, table string) (*SQLStore, error) {
	switch {
	case db == nil:
		return nil, &rebound.ConfigError{Field: "idempotency.NewSQLStore db", Reason: "nil"}
	case dialect != SQLite && dialect != Postgres:
		return nil, &rebound.ConfigError{Field: "idempotency.NewSQLStore dialect", Reason: "unknown: " + strconv.Itoa(int(dialect))}
	}
	if table == "" {
		table = DefaultTable
	}
	if !tableName.MatchString(table) {
		return nil, &rebound.ConfigError{Field: "idempotency.NewSQLStore table", Reason: "not a plain SQL identifier: " + strconv.Quote(table)}
	}
	s := &SQLStore{db: db, dialect: dialect, table: table}
	cols := "fingerprint = ?, state = 1, token = ?, locked_until = ?, expires_at = ?, status = 0, header = NULL, body = NULL"
	s.qInsert = s.q(`INSERT INTO ` + table + ` (scope, idem_key, fingerprint, state, token, locked_until, expires_at, status)
		VALUES (?, ?, ?, 1, ?, ?, ?, 0) ON CONFLICT (scope, idem_key) DO NOTHING`)
	s.qTakeover = s.q(`UPDATE ` + table + ` SET ` + cols + `
		WHERE scope = ? AND idem_key = ? AND (expires_at <= ? OR (state = 1 AND locked_until <= ?))`)
	s.qSelect = s.q(`SELECT fingerprint, state, status, locked_until, expires_at, header, body FROM ` + table + ` WHERE scope = ? AND idem_key = ?`)
	s.qComplete = s.q(`UPDATE ` + table + ` SET state = ?, status = ?, header = ?, body = ?, expires_at = ?
		WHERE scope = ? AND idem_key = ? AND token = ? AND state = 1`)
	s.qRelease = s.q(`DELETE FROM ` + table + ` WHERE scope = ? AND idem_key = ? AND token = ? AND state = 1`)
	s.qPrune = s.q(`DELETE FROM ` + table + ` WHERE expires_at <= ? OR (state = 1 AND locked_until <= ?)`)
	return s, nil
}

// q rewrites ? placeholders to $n for PostgreSQL. The queries are ours and
// contain no literal '?'.
func (s *SQLStore) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Init creates the table if it does not exist and checks its schema
// version. Every other method calls it on first use; call it at start-up
// to find a database problem early.
func (s *SQLStore) Init(ctx context.Context) error {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.inited {
		return nil
	}
	blob := "BLOB"
	if s.dialect == Postgres {
		blob = "BYTEA"
	}
	// The index lives in the table's schema: PostgreSQL puts an unqualified
	// index name there; SQLite wants the schema on the index name instead.
	index, on := s.table+"_expires", s.table
	if i := strings.IndexByte(s.table, '.'); i >= 0 {
		if s.dialect == Postgres {
			index = s.table[i+1:] + "_expires"
		} else {
			on = s.table[i+1:]
		}
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + s.table + `_meta (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)`,
		s.q(`INSERT INTO ` + s.table + `_meta (id, version) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`),
		`CREATE TABLE IF NOT EXISTS ` + s.table + ` (
			scope        TEXT    NOT NULL,
			idem_key     TEXT    NOT NULL,
			fingerprint  TEXT    NOT NULL,
			state        INTEGER NOT NULL, -- 1 in flight, 2 done, 3 done but response not stored
			token        TEXT    NOT NULL,
			locked_until BIGINT  NOT NULL, -- Unix nanoseconds
			expires_at   BIGINT  NOT NULL, -- Unix nanoseconds
			status       INTEGER NOT NULL,
			header       TEXT,             -- JSON object of the kept headers
			body         ` + blob + `,
			PRIMARY KEY (scope, idem_key))`,
		`CREATE INDEX IF NOT EXISTS ` + index + ` ON ` + on + ` (expires_at)`,
	}
	for i, st := range stmts {
		var err error
		if i == 1 {
			_, err = s.db.ExecContext(ctx, st, schemaVersion)
		} else {
			_, err = s.db.ExecContext(ctx, st)
		}
		if err != nil {
			return fmt.Errorf("idempotency: creating table %s: %w", s.table, err)
		}
	}
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM `+s.table+`_meta WHERE id = 1`).Scan(&v); err != nil {
		return fmt.Errorf("idempotency: reading schema version of %s: %w", s.table, err)
	}
	if v != schemaVersion {
		return fmt.Errorf("idempotency: table %s has schema version %d, this code knows %d", s.table, v, schemaVersion)
	}
	s.inited = true
	return nil
}

// Claim implements Store.
func (s *SQLStore) Claim(ctx context.Context, req ClaimRequest) (Record, error) {
	if err := s.Init(ctx); err != nil {
		return Record{}, err
	}
	now, locked, exp := req.Now.UnixNano(), req.LockedUntil.UnixNano(), req.ExpiresAt.UnixNano()
	// Read first: a replay or a 409 then costs one SELECT and takes no
	// write lock. Only the INSERT and the conditional UPDATE can claim, so
	// the read adds no race. A concurrent Release or Prune can delete the
	// row between statements; then the loop tries again. Three rounds are
	// plenty: each lost round means another request made progress.
	for range 3 {
		rec, found, err := s.read(ctx, req.Scope, req.Key, now)
		if err != nil {
			return Record{}, err
		}
		if found {
			return rec, nil
		}
		res, err := s.db.ExecContext(ctx, s.qInsert, req.Scope, req.Key, req.Fingerprint, req.Token, locked, exp)
		if err != nil {
			return Record{}, fmt.Errorf("idempotency: claim: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return Record{State: Claimed, Fingerprint: req.Fingerprint}, nil
		}
		res, err = s.db.ExecContext(ctx, s.qTakeover, req.Fingerprint, req.Token, locked, exp, req.Scope, req.Key, now, now)
		if err != nil {
			return Record{}, fmt.Errorf("idempotency: claim: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return Record{State: Claimed, Fingerprint: req.Fingerprint}, nil
		}
	}
	return Record{}, errors.New("idempotency: claim: the record kept changing; try again")
}

// read returns the live record for a key; found is false if there is none
// or it is free to claim (expired, or in flight with a timed-out lock).
func (s *SQLStore) read(ctx context.Context, scope, key string, now int64) (rec Record, found bool, err error) {
	var (
		fp                  string
		state, status       int
		lockedUntil, expire int64
		header              sql.NullString
		body                []byte
	)
	err = s.db.QueryRowContext(ctx, s.qSelect, scope, key).Scan(&fp, &state, &status, &lockedUntil, &expire, &header, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("idempotency: claim: %w", err)
	}
	if expire <= now || (state == sqlInFlight && lockedUntil <= now) {
		return Record{}, false, nil
	}
	switch state {
	case sqlInFlight:
		return Record{State: InFlight, Fingerprint: fp}, true, nil
	case sqlNotStored:
		return Record{State: Completed, Fingerprint: fp}, true, nil
	}
	resp := &Response{Status: status, Body: body}
	if header.Valid && header.String != "" {
		if err := json.Unmarshal([]byte(header.String), &resp.Header); err != nil {
			return Record{}, false, fmt.Errorf("idempotency: stored headers are corrupt: %w", err)
		}
	}
	if resp.Body == nil {
		resp.Body = []byte{}
	}
	return Record{State: Completed, Fingerprint: fp, Response: resp}, true, nil
}

// Complete implements Store.
func (s *SQLStore) Complete(ctx context.Context, scope, key, token string, resp *Response, expiresAt time.Time) error {
	if err := s.Init(ctx); err != nil {
		return err
	}
	state, status := sqlNotStored, 0
	var header sql.NullString
	var body []byte
	if resp != nil {
		state, status, body = sqlDone, resp.Status, resp.Body
		if body == nil {
			body = []byte{} // store an empty body, not NULL
		}
		h, err := json.Marshal(resp.Header)
		if err != nil {
			return fmt.Errorf("idempotency: complete: %w", err)
		}
		header = sql.NullString{String: string(h), Valid: true}
	}
	res, err := s.db.ExecContext(ctx, s.qComplete, state, status, header, body, expiresAt.UnixNano(), scope, key, token)
	if err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrNotOwner
	}
	return nil
}

// Release implements Store.
func (s *SQLStore) Release(ctx context.Context, scope, key, token string) error {
	if err := s.Init(ctx); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, s.qRelease, scope, key, token); err != nil {
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}

// Prune implements Store.
func (s *SQLStore) Prune(ctx context.Context, now time.Time) (int64, error) {
	if err := s.Init(ctx); err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, s.qPrune, now.UnixNano(), now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("idempotency: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

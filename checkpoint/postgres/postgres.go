// Package postgres is the checkpoint.Store that many workers on many
// machines share: one PostgreSQL database holds every job, and each worker
// process opens the same DSN.
//
// # Model
//
// The store keeps the semantics of the embedded SQLite store (see package
// checkpoint) and adds what sharing needs:
//
//   - Lease takes items with SELECT … FOR UPDATE SKIP LOCKED in one
//     statement, so concurrent workers never wait for each other and never
//     get the same item; each lease has an expiry that the runner's heartbeat
//     (Extend) moves forward while the item runs. When a worker dies, its
//     leases expire and other workers take the items, with a new lease token
//     (a result under the old token is dropped) but the same idempotency key
//     (the runner derives it from the job's ID, which every worker reads
//     from the jobs table, and the item ID), so a server that deduplicates
//     applies each item once.
//   - Time comes from the database server (statement_timestamp), so the
//     clocks of the workers' machines do not have to agree for leases to
//     expire correctly. Config.Clock, if set, replaces it (tests).
//   - Complete and SaveProgress are group-committed by a committer goroutine:
//     all results handed over while the previous transaction ran go into one
//     UPDATE … FROM unnest(…) statement. A commit that fails because the
//     connection was lost is retried with backoff (the updates are absolute
//     and conditional on the lease token, so applying them twice is
//     harmless); only an error that persists makes the store unusable.
//   - Errors caused by the connection (refused, reset, closed, server
//     shutting down) are marked transient (rebound.Classify reports
//     KindTransient); the runner retries such store calls with backoff.
//   - The schema is versioned; Open applies the migrations it lacks under a
//     transaction-level advisory lock, so workers that start together
//     migrate once, and refuses a schema written by a newer version.
//   - LockJob (checkpoint.JobLocker) is a per-job session advisory lock, so
//     that job.LoadManifest loads a manifest once when workers start
//     together; Workers (checkpoint.WorkerLister) reports each worker's
//     leases, done count and activity.
//
// It is not a checkpoint.RunLocker and has no Reclaim: other workers are
// alive, so a run never takes their leases back; lease expiry does.
//
// # Schema
//
// All tables live in one PostgreSQL schema, "rebound" unless the DSN says
// otherwise with search_path (postgres://…/db?search_path=myschema); Open
// creates it. Several independent deployments (or tests) can share a
// database by using different schemas.
//
// # Concurrency
//
// A *Store is safe for concurrent use; it holds a pgxpool.Pool.
package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/internal/groupcommit"
	"github.com/rebound-go/rebound/checkpoint/internal/spi"
)

// DefaultSchema is the schema the store uses when the DSN sets no
// search_path.
const DefaultSchema = "rebound"

var (
	_ checkpoint.Store        = (*Store)(nil)
	_ checkpoint.Reporter     = (*Store)(nil)
	_ checkpoint.JobLocker    = (*Store)(nil)
	_ checkpoint.WorkerLister = (*Store)(nil)
)

// Store is the PostgreSQL checkpoint.Store. Open it with Open.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	opts   checkpoint.Config

	gc *groupcommit.Committer[spi.Op] // Complete and SaveProgress; sticky error
}

var (
	_ checkpoint.Store        = (*Store)(nil)
	_ checkpoint.JobLocker    = (*Store)(nil)
	_ checkpoint.WorkerLister = (*Store)(nil)
)

// IsDSN reports whether s names a PostgreSQL database (postgres:// or
// postgresql:// URL) rather than a file.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Open connects to the database dsn names (a postgres:// URL or a
// key=value string, as pgx accepts), creates or migrates the schema, and
// starts the committer. The schema is the DSN's search_path (a single
// schema name), or DefaultSchema. Config.QueueSize and MaxBatch apply as
// for SQLite; Config.Clock, if set, replaces the server's clock.
//
// A schema written by a newer version of rebound is refused with an error
// wrapping checkpoint.ErrBadFile; a database that cannot be reached gives a
// transient error.
func Open(ctx context.Context, dsn string, opts checkpoint.Config) (*Store, error) {
	if err := spi.ValidateConfig(opts); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included: keep it out.
		return nil, fmt.Errorf("%w: cannot parse the PostgreSQL connection string", checkpoint.ErrInvalid)
	}
	schema := cfg.ConnConfig.RuntimeParams["search_path"]
	if schema == "" {
		schema = DefaultSchema
	}
	if strings.ContainsAny(schema, ",\"") || strings.TrimSpace(schema) != schema || len(schema) > 63 {
		return nil, fmt.Errorf("%w: search_path %q: give one schema name (at most 63 bytes, no quotes, commas or spaces around it)", checkpoint.ErrInvalid, schema)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "rebound"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second // the mission's connect timeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(err)
	}
	s := &Store{pool: pool, schema: schema, opts: opts}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.gc = groupcommit.New(groupcommit.Config[spi.Op]{
		Commit:    s.groupCommit,
		Weight:    spi.Weight,
		MaxBatch:  opts.MaxBatch,
		QueueSize: opts.QueueSize,
		ErrClosed: checkpoint.ErrClosed,
	})
	return s, nil
}

// Schema returns the schema the store's tables live in.
func (s *Store) Schema() string { return s.schema }

// DropSchema drops the store's schema with everything in it, and closes
// the store. Tests use it to clean up; it is irreversible.
func (s *Store) DropSchema(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.schema}.Sanitize()+" CASCADE")
	if cerr := s.Close(); err == nil && cerr != nil && !errors.Is(cerr, checkpoint.ErrClosed) {
		err = cerr
	}
	return wrap(err)
}

// classify judges an error from pgx: failures of the connection, and server
// states that pass (shutdown, too many connections, serialization and
// deadlock aborts), are transient; SQL errors and the caller's cancellation
// are not.
func classify(err error) rebound.Class {
	if err == nil {
		return rebound.Class{}
	}
	if errors.Is(err, context.Canceled) {
		return rebound.Class{Kind: rebound.KindPermanent, Reason: "canceled"}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "40001", pgErr.Code == "40P01", // serialization failure, deadlock
			pgErr.Code == "53300",                                               // too many connections
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, cannot connect now
			return rebound.Class{Kind: rebound.KindTransient, Reason: "postgres " + pgErr.Code}
		}
		return rebound.Class{Kind: rebound.KindPermanent, Reason: "postgres " + pgErr.Code}
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return rebound.Class{Kind: rebound.KindTransient, Reason: "timeout"}
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), pgconn.SafeToRetry(err):
		return rebound.Class{Kind: rebound.KindTransient, Reason: "connection"}
	}
	// pgx reports a connection that died under it in several ways ("conn
	// closed", "conn busy" after a cut); its own encoding errors would be
	// our bugs and show in tests. Treat the rest as the connection's.
	return rebound.Class{Kind: rebound.KindTransient, Reason: "postgres connection"}
}

// wrap prefixes the package and marks connection failures transient, so
// callers that retry (the job runner) know what is worth retrying.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	e := fmt.Errorf("checkpoint/postgres: %w", err)
	if classify(err).Kind == rebound.KindTransient {
		return rebound.Transient(e)
	}
	return e
}

func (s *Store) isClosed() bool { return s.gc.Closed() }

// nowArg is the first argument of every statement that needs the time:
// NULL means the server's clock (nowSQL).
func (s *Store) nowArg() *int64 {
	if s.opts.Clock == nil {
		return nil
	}
	n := s.opts.Clock.Now().UnixNano()
	return &n
}

// nowSQL is the current time in Unix nanoseconds: $1 if given, else the
// server's clock at the start of the statement (the same for every row).
const nowSQL = "coalesce($1::int8, (extract(epoch FROM statement_timestamp()) * 1000000000)::int8)"

// cleanText makes s storable in a text column: PostgreSQL text holds
// neither NUL bytes nor invalid UTF-8, and an error text may contain either
// (it may quote a server's bytes). Stored error texts are for people.
func cleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// checkName refuses an ID or name that PostgreSQL text cannot hold,
// instead of failing deep in a statement.
func checkName(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q contains a NUL byte or invalid UTF-8, which PostgreSQL text cannot hold", checkpoint.ErrInvalid, what, s)
	}
	return nil
}

// OpenJob implements checkpoint.Store. Workers that open the same new job at
// once all succeed; one of them creates it.
func (s *Store) OpenJob(ctx context.Context, name string, meta checkpoint.JobMeta) (checkpoint.Job, error) {
	if err := spi.ValidateJobName(name); err != nil {
		return checkpoint.Job{}, err
	}
	if err := checkName("job name", name); err != nil {
		return checkpoint.Job{}, err
	}
	if s.isClosed() {
		return checkpoint.Job{}, checkpoint.ErrClosed
	}
	j := checkpoint.Job{Name: name, Meta: meta, ID: spi.NewJobID()}
	var created int64
	err := s.pool.QueryRow(ctx, `INSERT INTO jobs (name, uid, fingerprint, total, created) VALUES ($2, $5, $3, $4, `+nowSQL+`)
		ON CONFLICT (name) DO NOTHING RETURNING created`, s.nowArg(), name, meta.Fingerprint, meta.Total, j.ID).Scan(&created)
	if err == nil {
		j.Created = spi.FromNano(created)
		return j, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return checkpoint.Job{}, wrap(err)
	}
	var have checkpoint.JobMeta
	// Another worker created the job: its ID is the one to share.
	err = s.pool.QueryRow(ctx, "SELECT uid, fingerprint, total, items, created FROM jobs WHERE name = $1", name).
		Scan(&j.ID, &have.Fingerprint, &have.Total, &j.Items, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		// Restarted between the two statements by another process.
		return s.OpenJob(ctx, name, meta)
	}
	if err != nil {
		return checkpoint.Job{}, wrap(err)
	}
	if have != meta {
		return checkpoint.Job{}, spi.ManifestChangedError(name, have, meta)
	}
	j.Created, j.Resumed = spi.FromNano(created), true
	return j, nil
}

// Job implements checkpoint.Store.
func (s *Store) Job(ctx context.Context, name string) (checkpoint.Job, error) {
	if s.isClosed() {
		return checkpoint.Job{}, checkpoint.ErrClosed
	}
	j := checkpoint.Job{Name: name, Resumed: true}
	var created int64
	err := s.pool.QueryRow(ctx, "SELECT uid, fingerprint, total, items, created FROM jobs WHERE name = $1", name).
		Scan(&j.ID, &j.Meta.Fingerprint, &j.Meta.Total, &j.Items, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return checkpoint.Job{}, spi.NoJobError(name)
	} else if err != nil {
		return checkpoint.Job{}, wrap(err)
	}
	j.Created = spi.FromNano(created)
	return j, nil
}

// Restart implements checkpoint.Store.
func (s *Store) Restart(ctx context.Context, name string) error {
	if err := s.Flush(ctx); err != nil {
		return err
	}
	// Items go with the job (ON DELETE CASCADE).
	_, err := s.pool.Exec(ctx, "DELETE FROM jobs WHERE name = $1", name)
	return wrap(err)
}

// AddItems implements checkpoint.Store: one transaction, one INSERT for the
// whole batch.
func (s *Store) AddItems(ctx context.Context, job string, items []checkpoint.Item) error {
	ids := make([]string, len(items))
	payloads := make([][]byte, len(items))
	seen := make(map[string]struct{}, len(items))
	for i, it := range items {
		if err := spi.ValidateItem(it); err != nil {
			return err
		}
		if err := checkName("item ID", it.ID); err != nil {
			return err
		}
		if _, dup := seen[it.ID]; dup {
			return fmt.Errorf("%w: job %q: item %q", checkpoint.ErrDuplicateID, job, it.ID)
		}
		seen[it.ID] = struct{}{}
		ids[i], payloads[i] = it.ID, it.Payload
	}
	if s.isClosed() {
		return checkpoint.ErrClosed
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The row lock serializes loaders of one job, so the total holds.
	var jid, total, have int64
	err = tx.QueryRow(ctx, "SELECT id, total, items FROM jobs WHERE name = $1 FOR UPDATE", job).Scan(&jid, &total, &have)
	if errors.Is(err, pgx.ErrNoRows) {
		return spi.NoJobError(job)
	} else if err != nil {
		return wrap(err)
	}
	if total > 0 && have+int64(len(items)) > total {
		return fmt.Errorf("%w: job %q: adding %d items to %d would exceed its total of %d", checkpoint.ErrInvalid, job, len(items), have, total)
	}
	var dup string
	err = tx.QueryRow(ctx, "SELECT id FROM items WHERE job = $1 AND id = ANY($2::text[]) LIMIT 1", jid, ids).Scan(&dup)
	if err == nil {
		return fmt.Errorf("%w: job %q: item %q", checkpoint.ErrDuplicateID, job, dup)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return wrap(err)
	}
	// WITH ORDINALITY + ORDER BY: seq (the added order) follows the batch.
	_, err = tx.Exec(ctx, `INSERT INTO items (job, id, payload, state, created, updated)
		SELECT $2, u.id, u.payload, 1, `+nowSQL+`, `+nowSQL+`
		FROM unnest($3::text[], $4::bytea[]) WITH ORDINALITY AS u(id, payload, ord) ORDER BY u.ord`,
		s.nowArg(), jid, ids, payloads)
	if err != nil {
		return wrap(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE jobs SET items = items + $1 WHERE id = $2", len(items), jid); err != nil {
		return wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(err)
	}
	// A bulk load leaves the planner without statistics until autovacuum
	// comes by (a minute or more), and without them it takes a job for a
	// few dozen rows and plans the group commit as a scan of the whole job
	// (measured: 12 ms instead of 1 ms for 16 results in a 20,000-item
	// job). Analyze when the job's size reaches a new power of ten: a few
	// times per load, each a sample of at most 30,000 rows.
	if after := have + int64(len(items)); after >= 1000 && digits(after) > digits(have) {
		if _, err := s.pool.Exec(ctx, "ANALYZE items"); err != nil {
			return wrap(err)
		}
	}
	return nil
}

// digits is the number of decimal digits of n > 0 (0 for 0).
func digits(n int64) int {
	d := 0
	for ; n > 0; n /= 10 {
		d++
	}
	return d
}

const itemCols = "i.seq, i.id, i.payload, i.state, i.attempts, i.err, i.err_kind, i.progress, i.worker, i.lease, i.due, i.created, i.updated"

func scanItem(row pgx.Row, job string, extra ...any) (seq int64, it checkpoint.Item, err error) {
	var (
		state                 int16
		prog                  []byte
		due, created, updated int64
	)
	dest := append(extra, &seq, &it.ID, &it.Payload, &state, &it.Attempts, &it.Err, &it.ErrKind, &prog,
		&it.Worker, &it.Lease, &due, &created, &updated)
	if err = row.Scan(dest...); err != nil {
		return 0, checkpoint.Item{}, err
	}
	it.Job, it.State = job, checkpoint.ItemState(state)
	it.Due, it.Created, it.Updated = spi.FromNano(due), spi.FromNano(created), spi.FromNano(updated)
	if len(prog) > 0 {
		if err := json.Unmarshal(prog, &it.Progress); err != nil {
			return 0, checkpoint.Item{}, fmt.Errorf("item %q: bad progress record: %w", it.ID, err)
		}
	}
	return seq, it, nil
}

// leaseSQL leases up to $5 items in one statement: expired leases first,
// then due retries, then pending items, each branch the head of one range
// of the partial index items_due, locked with SKIP LOCKED so concurrent
// workers pass each other instead of waiting. The outer LIMIT stops the
// later branches once enough rows came. One token per statement.
var leaseSQL = func() string {
	branch := func(state, grp int) string {
		return fmt.Sprintf(`SELECT * FROM (SELECT i.job, i.id, %d AS grp FROM items i
			WHERE i.job = (SELECT id FROM jobs WHERE name = $2) AND i.state = %d AND i.due <= `+nowSQL+`
			ORDER BY i.due, i.seq LIMIT $5 FOR UPDATE OF i SKIP LOCKED) b%d`, grp, state, grp)
	}
	return `WITH cand AS (` + branch(int(checkpoint.Leased), 0) + ` UNION ALL ` +
		branch(int(checkpoint.Failed), 1) + ` UNION ALL ` + branch(int(checkpoint.Pending), 2) + `),
		pick AS (SELECT * FROM cand LIMIT $5),
		tok AS (SELECT nextval('lease_seq') AS v)
		UPDATE items i SET state = 2, worker = $3, lease = tok.v, due = ` + nowSQL + ` + $4, attempts = i.attempts + 1, updated = ` + nowSQL + `
		FROM pick, tok WHERE i.job = pick.job AND i.id = pick.id
		RETURNING pick.grp, ` + itemCols
}()

// Lease implements checkpoint.Store.
func (s *Store) Lease(ctx context.Context, job, worker string, n int, ttl time.Duration) ([]checkpoint.Item, error) {
	if err := spi.ValidateLease(n, ttl); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	rows, err := s.pool.Query(ctx, leaseSQL, s.nowArg(), job, cleanText(worker), ttl.Nanoseconds(), n)
	if err != nil {
		return nil, wrap(err)
	}
	type leased struct {
		grp, seq int64
		it       checkpoint.Item
	}
	var got []leased
	for rows.Next() {
		var l leased
		var grp int32
		l.seq, l.it, err = scanItem(rows, job, &grp)
		if err != nil {
			rows.Close()
			return nil, wrap(err)
		}
		l.grp = int64(grp)
		got = append(got, l)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	if len(got) == 0 {
		// Nothing leasable, or no such job: tell them apart.
		var one int
		err := s.pool.QueryRow(ctx, "SELECT 1 FROM jobs WHERE name = $1", job).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, spi.NoJobError(job)
		}
		return nil, wrap(err)
	}
	// RETURNING has no defined order: each group in added order.
	slices.SortFunc(got, func(a, b leased) int {
		return cmp.Or(cmp.Compare(a.grp, b.grp), cmp.Compare(a.seq, b.seq))
	})
	out := make([]checkpoint.Item, len(got))
	for i := range got {
		out[i] = got[i].it
	}
	return out, nil
}

// Extend implements checkpoint.Store.
func (s *Store) Extend(ctx context.Context, job, id string, lease int64, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: lease TTL %v <= 0", checkpoint.ErrInvalid, ttl)
	}
	return s.updateLeased(ctx, job, id, lease, `due = `+nowSQL+` + $5, updated = `+nowSQL, ttl.Nanoseconds())
}

// Release implements checkpoint.Store.
func (s *Store) Release(ctx context.Context, job, id string, lease int64) error {
	return s.updateLeased(ctx, job, id, lease, `state = 1, due = 0, attempts = greatest(i.attempts - 1, 0), updated = `+nowSQL)
}

// Defer implements checkpoint.Store.
func (s *Store) Defer(ctx context.Context, job, id string, lease int64, next time.Time, err, errKind string) error {
	var due *int64 // NULL: now, by the same clock as updated
	if !next.IsZero() {
		n := next.UnixNano()
		due = &n
	}
	set := `state = 4, due = coalesce($5::int8, ` + nowSQL + `), attempts = greatest(i.attempts - 1, 0), updated = ` + nowSQL
	if err == "" && errKind == "" {
		return s.updateLeased(ctx, job, id, lease, set, due)
	}
	return s.updateLeased(ctx, job, id, lease, set+`, err = $6, err_kind = $7`, due,
		cleanText(spi.CutErr(err)), cleanText(errKind))
}

// updateLeased applies set to the item while lease holds it, or returns an
// error wrapping checkpoint.ErrLeaseLost. In set, $1 is the clock argument
// (nowSQL) and extra args are $5 on.
func (s *Store) updateLeased(ctx context.Context, job, id string, lease int64, set string, extra ...any) error {
	if s.isClosed() {
		return checkpoint.ErrClosed
	}
	tag, err := s.pool.Exec(ctx, `UPDATE items i SET `+set+`
		FROM jobs j WHERE j.name = $2 AND i.job = j.id AND i.id = $3 AND i.lease = $4 AND i.state = 2 AND i.lease <> 0`,
		append([]any{s.nowArg(), job, id, lease}, extra...)...)
	if err != nil {
		return wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return spi.LeaseLostError(job, id, lease)
	}
	return nil
}

// jobID looks the job up; never cached, since another process may restart
// (delete and recreate) it at any time.
func (s *Store) jobID(ctx context.Context, job string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, "SELECT id FROM jobs WHERE name = $1", job).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, spi.NoJobError(job)
	}
	return id, wrap(err)
}

// Complete implements checkpoint.Store. It copies results; the caller may
// reuse them.
func (s *Store) Complete(ctx context.Context, results []checkpoint.Result) error {
	op, ok, err := spi.CompleteOp(results)
	if !ok {
		return err
	}
	return s.gc.Send(ctx, op)
}

// SaveProgress implements checkpoint.Store.
func (s *Store) SaveProgress(ctx context.Context, job, id string, lease int64, p checkpoint.Progress) error {
	op, err := spi.ProgressOp(job, id, lease, p)
	if err != nil {
		return err
	}
	return s.gc.Send(ctx, op)
}

// Flush implements checkpoint.Store.
func (s *Store) Flush(ctx context.Context) error { return s.gc.Flush(ctx) }

// Item implements checkpoint.Store.
func (s *Store) Item(ctx context.Context, job, id string) (checkpoint.Item, error) {
	if s.isClosed() {
		return checkpoint.Item{}, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, job)
	if err != nil {
		return checkpoint.Item{}, err
	}
	_, it, err := scanItem(s.pool.QueryRow(ctx, "SELECT "+itemCols+" FROM items i WHERE i.job = $1 AND i.id = $2", jid, id), job)
	if errors.Is(err, pgx.ErrNoRows) {
		return checkpoint.Item{}, spi.NoItemError(job, id)
	}
	return it, wrap(err)
}

// Stats implements checkpoint.Store. It reads every item of the job (in the
// database, not in memory).
func (s *Store) Stats(ctx context.Context, job string) (checkpoint.Stats, error) {
	if s.isClosed() {
		return checkpoint.Stats{}, checkpoint.ErrClosed
	}
	st := checkpoint.Stats{Job: checkpoint.Job{Name: job, Resumed: true}}
	var jid, created int64
	err := s.pool.QueryRow(ctx, "SELECT id, uid, fingerprint, total, items, created FROM jobs WHERE name = $1", job).
		Scan(&jid, &st.Job.ID, &st.Job.Meta.Fingerprint, &st.Job.Meta.Total, &st.Job.Items, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return checkpoint.Stats{}, spi.NoJobError(job)
	} else if err != nil {
		return checkpoint.Stats{}, wrap(err)
	}
	st.Job.Created = spi.FromNano(created)
	rows, err := s.pool.Query(ctx, `SELECT state, count(*), sum(attempts), min(updated), max(updated)
		FROM items WHERE job = $1 GROUP BY state`, jid)
	if err != nil {
		return checkpoint.Stats{}, wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var state int16
		var n, attempts, first, last int64
		if err := rows.Scan(&state, &n, &attempts, &first, &last); err != nil {
			return checkpoint.Stats{}, wrap(err)
		}
		spi.CountState(&st, checkpoint.ItemState(state), n, attempts, first, last)
	}
	return st, wrap(rows.Err())
}

// unfinishedSQL returns no row for a missing job, else whether the job has
// a Pending, Leased or Failed item. The state list implies the predicate of
// the partial index items_due, so the planner probes it (Index Cond on job
// and state) instead of counting the job's rows as Stats does; every worker
// of a job that waits for deferred retries runs it each poll interval.
const unfinishedSQL = `SELECT EXISTS (SELECT 1 FROM items i WHERE i.job = j.id AND i.state IN (1, 2, 4))
	FROM jobs j WHERE j.name = $1`

// Unfinished implements checkpoint.Store in one round trip.
func (s *Store) Unfinished(ctx context.Context, job string) (bool, error) {
	if s.isClosed() {
		return false, checkpoint.ErrClosed
	}
	var found bool
	err := s.pool.QueryRow(ctx, unfinishedSQL, job).Scan(&found)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, spi.NoJobError(job)
	}
	return found, wrap(err)
}

// TopErrors implements checkpoint.Reporter.
func (s *Store) TopErrors(ctx context.Context, job string, n int) ([]checkpoint.ErrorCount, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: n %d < 1", checkpoint.ErrInvalid, n)
	}
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, job)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT err_kind, err, count(*) AS c FROM items
		WHERE job = $1 AND state IN (4, 5) GROUP BY err_kind, err ORDER BY c DESC, err_kind, err LIMIT $2`, jid, n)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []checkpoint.ErrorCount
	for rows.Next() {
		var e checkpoint.ErrorCount
		if err := rows.Scan(&e.Kind, &e.Err, &e.Count); err != nil {
			return nil, wrap(err)
		}
		out = append(out, e)
	}
	return out, wrap(rows.Err())
}

// Dead implements checkpoint.Reporter.
func (s *Store) Dead(ctx context.Context, job string, limit int) ([]checkpoint.Item, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: limit %d < 1", checkpoint.ErrInvalid, limit)
	}
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, job)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+itemCols+" FROM items i WHERE i.job = $1 AND i.state = 5 ORDER BY i.due, i.seq LIMIT $2", jid, limit)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []checkpoint.Item
	for rows.Next() {
		_, it, err := scanItem(rows, job)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, it)
	}
	return out, wrap(rows.Err())
}

// RetryDead implements checkpoint.Reporter. It flushes first, so results handed
// over before it are included.
func (s *Store) RetryDead(ctx context.Context, job string) (int64, error) {
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	jid, err := s.jobID(ctx, job)
	if err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE items SET state = 1, attempts = 0, due = 0, updated = `+nowSQL+` WHERE job = $2 AND state = 5`,
		s.nowArg(), jid)
	if err != nil {
		return 0, wrap(err)
	}
	return tag.RowsAffected(), nil
}

// lockClass is the first key of the advisory lock that serializes
// migrations ("RBND"); the second is the schema name's hash.
const lockClass = 0x52424E44

// LockJob implements checkpoint.JobLocker with a session advisory lock on a
// connection of its own: it is released by unlock, or by the server if the
// process dies and its connection drops.
func (s *Store) LockJob(ctx context.Context, job string) (func(), error) {
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	// Two keys: the schema's hash, so that other deployments sharing the
	// database do not wait on us, and the job's.
	const lock = "SELECT pg_advisory_lock(hashtext('rebound:' || $1), hashtext($2))"
	const unlock = "SELECT pg_advisory_unlock(hashtext('rebound:' || $1), hashtext($2))"
	if _, err := conn.Exec(ctx, lock, s.schema, job); err != nil {
		conn.Release()
		return nil, wrap(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := conn.Exec(ctx, unlock, s.schema, job); err != nil {
				// Unsure whether the lock is gone: drop the session, which ends it.
				conn.Conn().Close(ctx)
			}
			conn.Release()
		})
	}, nil
}

// Workers implements checkpoint.WorkerLister: every worker that holds or
// finished items of the job, most items done first. It reads every item of
// the job (in the database).
func (s *Store) Workers(ctx context.Context, job string) ([]checkpoint.WorkerStat, error) {
	if s.isClosed() {
		return nil, checkpoint.ErrClosed
	}
	jid, err := s.jobID(ctx, job)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT worker,
			count(*) FILTER (WHERE state = 2 AND due > `+nowSQL+`),
			count(*) FILTER (WHERE state = 3),
			coalesce(min(updated) FILTER (WHERE state = 3), 0),
			coalesce(max(updated) FILTER (WHERE state = 3), 0),
			max(updated)
		FROM items WHERE job = $2 AND worker <> '' GROUP BY worker
		ORDER BY 3 DESC, 1`, s.nowArg(), jid)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []checkpoint.WorkerStat
	for rows.Next() {
		var w checkpoint.WorkerStat
		var first, last, active int64
		if err := rows.Scan(&w.Worker, &w.Leased, &w.Done, &first, &last, &active); err != nil {
			return nil, wrap(err)
		}
		w.FirstDone, w.LastDone, w.LastActive = spi.FromNano(first), spi.FromNano(last), spi.FromNano(active)
		out = append(out, w)
	}
	return out, wrap(rows.Err())
}

// Close implements checkpoint.Store: it waits for the committer to write
// everything handed over, then closes the pool.
func (s *Store) Close() error {
	err := s.gc.Close()
	if errors.Is(err, checkpoint.ErrClosed) {
		return err // closed before
	}
	s.pool.Close()
	return err
}

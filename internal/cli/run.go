package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/postgres"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/job"
	"github.com/rebound-go/rebound/reboundhttp"
)

func init() { commands = append(commands, newRunCmd, newStatusCmd) }

type runFlags struct {
	state, jobName                    string
	restart, retryDead, json, quiet   bool
	concurrency, attempts             int
	connectTimeout, readTimeout, wait time.Duration
	maxWait, grace, leaseTTL          time.Duration
	breakerFailures                   int
	breakerOpen                       time.Duration
	rate                              string
	burst, maxPerHost                 int
	noPacing                          bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run MANIFEST.jsonl",
		Short: "Send a batch of HTTP requests, checkpointed, resuming where a previous run stopped",
		Long: `run sends every request of a JSONL manifest, one JSON object per line:

  {"id": "user-42", "method": "PUT", "url": "https://api.example.com/users/42",
   "headers": {"Authorization": "Bearer …"}, "body": {"name": "Ada"}}

("body" is JSON or a string; "body_file" names a file to send instead.)

Progress goes to a state file (.rebound/<manifest name>.db in the manifest's
folder, unless --state says otherwise). With --state postgres://… (or
REBOUND_STATE) many workers, on many machines, share one job: start the same
command on each; the first loads the manifest, the others join, and a worker
that dies leaves its items to the others once its leases expire (--lease-ttl).
Running the same command again resumes: finished items are skipped,
interrupted ones continue. Every request carries an Idempotency-Key
derived from the job's ID (drawn at random when the state first loads the
manifest) and the item ID, the same after any crash, so a server that
deduplicates applies each item exactly once. Another state file, or
--restart, is a new job with new keys: it sends every item again.

Failures are classified: connection errors, timeouts, 408, 429 and 5xx but
501 are retried with jittered exponential backoff (Retry-After honoured;
a wait over 2 s puts the host's items off in the state, freeing the workers);
501 and other 4xx make the item dead at once. A circuit breaker per host stops sending to a
host that keeps failing (a 429 or a 503 with Retry-After is throttling, not
failure: it never opens one); it opens for 1s first, longer while its probes
fail, up to --breaker-open, and the display names each open host, when it
probes next and how many items wait for it. Each host is paced: the requests
in flight to it adapt (up to --max-per-host) to 429s, timeouts and slow
answers, a Retry-After pauses the whole host, limits it announces (RateLimit,
X-RateLimit-*) are kept to, and --rate caps it; items of a host with no room
wait without using a worker or an attempt. --attempts counts requests that may have been sent:
an item held back by a breaker or a throttled host spends none. 'rebound
status' shows the dead items and why; --retry-dead gives them another chance.
A redirect that would re-send a POST as a GET (301, 302, 303), loop, or lead
from https to http makes the item dead with the Location in its reason; 307
and 308 re-send method and body; a redirect to another host or port carries
none of the manifest's headers.

One run per state file at a time: a second 'rebound run' on the same SQLite
state exits with 2 and names the process that holds it.

Exit codes: 0 all done, 1 some items dead, 2 usage or input error (a bad
manifest is refused before anything is sent; the state is in use by another
run), 130 interrupted (SIGINT or
SIGTERM: in-flight items finish, progress is saved; a second signal exits at
once, and the state file stays consistent).`,
		Example: `  rebound run users.jsonl
  rebound run users.jsonl --concurrency 32 --json > events.jsonl
  rebound status users.jsonl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runManifest(cmd, args[0], &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.state, "state", "", "state file, or postgres://… URL shared by many workers (default .rebound/<manifest name>.db beside the manifest; env REBOUND_STATE)")
	fl.StringVar(&f.jobName, "job", "", "job name in the state file (default: the manifest's file name)")
	fl.BoolVar(&f.restart, "restart", false, "forget saved progress and start the job over")
	fl.BoolVar(&f.retryDead, "retry-dead", false, "give dead items another full set of attempts")
	fl.IntVar(&f.concurrency, "concurrency", 8, "requests in flight at once")
	fl.IntVar(&f.attempts, "attempts", 5, "attempts per item in all, across retries and restarts")
	fl.DurationVar(&f.wait, "backoff", time.Second, "wait after the first failure (doubles each time, ×[0.8, 1.2] jitter; 0 retries at once)")
	fl.DurationVar(&f.maxWait, "max-backoff", 30*time.Second, "longest wait between attempts")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", 5*time.Second, "TCP connect and TLS handshake timeout")
	fl.DurationVar(&f.readTimeout, "read-timeout", 30*time.Second, "timeout for the response headers of each attempt")
	fl.StringVar(&f.rate, "rate", "", "most requests per second to each host, e.g. 100/s or 600/m (default: none; the pacing still adapts to 429s and announced limits)")
	fl.IntVar(&f.burst, "burst", 1, "with --rate: how many requests may start at once after a quiet spell (a token bucket of this size)")
	fl.IntVar(&f.maxPerHost, "max-per-host", 0, "most requests in flight to one host (default: --concurrency); the limit adapts below it")
	fl.BoolVar(&f.noPacing, "no-pacing", false, "no per-host pacing: fixed --concurrency, a Retry-After holds only its own item (long ones still put the host's items off)")
	fl.IntVar(&f.breakerFailures, "breaker-failures", 5, "consecutive failed items (an item's retries count once) that open a host's circuit breaker")
	fl.DurationVar(&f.breakerOpen, "breaker-open", 60*time.Second, "longest an open breaker rejects requests before a probe (it opens for 1s first, 1.2 times longer after each failed probe)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 2*time.Minute, "how long an item stays with a worker that stopped renewing it (heartbeat every third of it); with a shared state, a dead worker's items return after it")
	fl.DurationVar(&f.grace, "grace", 10*time.Second, "on SIGINT/SIGTERM, how long in-flight requests may finish")
	fl.BoolVar(&f.json, "json", false, "write one JSON event per line to stdout (item outcomes, retries with wait_ms, summary)")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress display")
	return cmd
}

// jobNameFor is the default job name: the manifest's file name without its extension.
func jobNameFor(manifest string) string {
	base := filepath.Base(manifest)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// statePathFor is where a manifest's progress lives unless told otherwise.
func statePathFor(flag, manifest string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("REBOUND_STATE"); env != "" {
		return env
	}
	return filepath.Join(filepath.Dir(manifest), ".rebound", jobNameFor(manifest)+".db")
}

// removeNewState closes a SQLite state that this run created for a manifest
// it then refused, and removes it with SQLite's side files and the directory
// if this run made that too (only if it is empty then).
func removeNewState(st checkpoint.Store, path string, created []string) {
	st.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-lock"} {
		os.Remove(p)
	}
	if dir := filepath.Dir(path); slices.Contains(created, dir) {
		os.Remove(dir) // fails, harmlessly, if anything else is in it
	}
}

// stateStore is what the CLI needs of a checkpoint store: the lease queue
// and its reports (dead items, top errors). SQLite and PostgreSQL are both.
type stateStore interface {
	checkpoint.Store
	checkpoint.Reporter
}

// openStore opens the store a --state value names: a PostgreSQL URL, shared
// by many workers, or a SQLite file.
func openStore(ctx context.Context, path string) (stateStore, error) {
	if postgres.IsDSN(path) {
		// Workers may start before the database is up: wait for it a
		// little (1+2+4+8 s of backoff) while it refuses connections.
		var st *postgres.Store
		err := (&rebound.Retry{Name: "connect to the PostgreSQL state"}).Do(ctx, func(ctx context.Context) (err error) {
			st, err = postgres.Open(ctx, path, checkpoint.Config{})
			// Only what the store marked as passing is worth waiting for.
			var c rebound.Classed
			if err != nil && !(errors.As(err, &c) && c.Class().Kind.Retryable()) {
				err = rebound.Permanent(err)
			}
			return err
		})
		var re *rebound.RetryError
		if errors.As(err, &re) {
			err = re.Last // the store's message; the attempts say little here
		}
		if errors.Is(err, checkpoint.ErrInvalid) || errors.Is(err, checkpoint.ErrBadFile) {
			return nil, usageErr(err)
		}
		if err != nil {
			return nil, withCode(ExitFailed, fmt.Errorf("state: %w", err)) // unreachable: not a usage error
		}
		return st, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	st, err := sqlite.Open(path, checkpoint.Config{})
	if errors.Is(err, checkpoint.ErrReadOnly) {
		err = fmt.Errorf("%w\nhint: 'rebound status' can still show its progress", err)
	}
	if err != nil {
		return nil, usageErr(err)
	}
	return st, nil
}

// manifestChangedHint adds the command line's side to the store's advice:
// the flags that look like a way out (--restart, --job) would send the
// finished items again, under new idempotency keys.
func manifestChangedHint(ctx context.Context, st checkpoint.Store, name string, err error) error {
	done := "the items it already did"
	if s, serr := st.Stats(ctx, name); serr == nil {
		done = fmt.Sprintf("the %d item(s) it already did", s.Done)
	}
	return fmt.Errorf("%w\nhint: to send more requests, write only the new lines to a new manifest file and 'rebound run' that; "+
		"'rebound status' shows what this job did. Do not use --restart or another --job name for the edited manifest: "+
		"a new job has new idempotency keys, so %s would be sent again", err, done)
}

func runManifest(cmd *cobra.Command, manifest string, f *runFlags) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := f.check(); err != nil {
		return err
	}
	if _, err := os.Stat(manifest); err != nil {
		return usageErr(fmt.Errorf("manifest: %w", err))
	}
	name := f.jobName
	if name == "" {
		name = jobNameFor(manifest)
	}
	statePath := statePathFor(f.state, manifest)
	shared := postgres.IsDSN(statePath)
	created := notYetThere(statePath, shared)
	st, err := openStore(ctx, statePath)
	if err != nil {
		return err
	}
	defer st.Close()
	// One run per state file: before --restart or loading touch the job,
	// not only when the runner starts (job.Run takes the same lock again).
	if l, ok := st.(checkpoint.RunLocker); ok {
		unlock, err := l.TryLockRun(name)
		if errors.Is(err, checkpoint.ErrLocked) {
			return usageErr(err)
		} else if err != nil {
			return err
		}
		defer unlock()
	}
	jb, err := prepareJob(ctx, st, name, manifest, statePath, created, f, stderr)
	if err != nil {
		return err
	}
	before, err := st.Stats(ctx, name)
	if err != nil {
		return err
	}

	// After the first signal the run winds down; a second one must kill the
	// process at once, so stop catching signals then.
	context.AfterFunc(ctx, func() { signal.Reset(os.Interrupt, syscall.SIGTERM) })

	p := &runProgress{board: newBreakerBoard()}
	if f.json {
		p.json = newJSONLines(stdout)
	}
	remaining := before.Pending + before.Leased + before.Failed
	p.bar = newCounter(stderr, name, remaining, f.quiet || f.json, func() string {
		return fmt.Sprintf("retries %d, open breakers %d", p.retries.Load(), p.openBreakers.Load()) + p.pacingLine() + p.board.summary(time.Now())
	})
	if p.bar.enabled && p.bar.bar == nil {
		// Not a terminal: a line per host whose breaker holds its items,
		// when it opens and every 5 s while it stays open.
		p.plain = stderr
		stopLines := p.board.every(stderr, 5*time.Second)
		defer stopLines() // before the summary too, below
		p.stopLines = stopLines
	}
	if jb.Resumed && !f.quiet && !f.json {
		fmt.Fprintf(stderr, "rebound: resuming %s: %d done, %d dead, %d to go\n", name, before.Done, before.Dead, remaining)
	}
	cfg, err := runConfig(name, st, f, p)
	if err != nil {
		return err
	}
	client, err := newRunClient(f)
	if err != nil {
		return usageErr(err)
	}
	sum, runErr := job.Run(ctx, cfg, job.HTTPHandler(client, filepath.Dir(manifest)))
	if p.stopLines != nil {
		p.stopLines()
	}
	p.bar.finish()
	p.writePacing()
	report(stdout, stderr, p.json, name, sum, f.quiet)
	switch {
	case errors.Is(runErr, job.ErrInterrupted):
		return withCode(ExitInterrupted, runErr)
	case runErr != nil:
		return withCode(ExitFailed, runErr) // the store failed mid-run: not a usage error
	case sum.Stats.Dead > 0:
		return withCode(ExitFailed, fmt.Errorf("%d item(s) dead; see 'rebound status %s'", sum.Stats.Dead, manifest))
	}
	return nil
}

// check refuses flag values the run cannot use, as usage errors.
func (f *runFlags) check() error {
	if f.concurrency < 1 || f.attempts < 1 || f.breakerFailures < 1 {
		return usageErr(errors.New("--concurrency, --attempts and --breaker-failures must be at least 1"))
	}
	if f.leaseTTL < 3*time.Millisecond {
		return usageErr(errors.New("--lease-ttl must be at least 3ms"))
	}
	// The library reads 0 as "the default" and a negative duration as
	// "none"; on the command line both would silently turn --read-timeout 0
	// into 30s or --grace -1s into a failed run, so only positive values
	// are taken (and --backoff 0, meaning retry at once).
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--max-backoff", f.maxWait}, {"--connect-timeout", f.connectTimeout}, {"--read-timeout", f.readTimeout},
		{"--breaker-open", f.breakerOpen}, {"--grace", f.grace}} {
		if d.v <= 0 {
			return usageErr(fmt.Errorf("%s must be positive, not %v", d.name, d.v))
		}
	}
	if f.wait < 0 {
		return usageErr(fmt.Errorf("--backoff must be 0 (retry at once) or positive, not %v", f.wait))
	}
	return nil
}

// notYetThere lists the state file and its directory where they do not
// exist yet: a manifest refused on its first run must leave nothing behind,
// so the run notes what it creates, to take it away again.
func notYetThere(statePath string, shared bool) (created []string) {
	if shared {
		return nil
	}
	for _, p := range []string{filepath.Dir(statePath), statePath} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			created = append(created, p)
		}
	}
	return created
}

// prepareJob gets the job ready to run, as the flags ask: started over
// (--restart), the manifest loaded (or checked against what was loaded),
// dead items given another chance (--retry-dead). A refused manifest
// removes a state file this run created.
func prepareJob(ctx context.Context, st stateStore, name, manifest, statePath string, created []string,
	f *runFlags, stderr io.Writer) (checkpoint.Job, error) {
	if f.restart {
		if err := st.Restart(ctx, name); err != nil {
			return checkpoint.Job{}, err
		}
	}
	jb, err := job.LoadManifest(ctx, st, name, manifest)
	if err != nil {
		var merr *job.ManifestError
		if errors.As(err, &merr) && slices.Contains(created, statePath) {
			removeNewState(st, statePath, created)
		}
		if errors.Is(err, checkpoint.ErrManifestChanged) {
			return jb, usageErr(manifestChangedHint(ctx, st, name, err))
		}
		if errors.As(err, &merr) {
			return jb, usageErr(err)
		}
		return jb, err
	}
	if f.retryDead {
		n, err := st.RetryDead(ctx, name)
		if err != nil {
			return jb, err
		}
		fmt.Fprintf(stderr, "rebound: %d dead item(s) will be tried again\n", n)
	}
	return jb, nil
}

// runProgress is what a run shows while it goes: the counter line on
// stderr (retries, open breakers, items finished) and the --json events.
type runProgress struct {
	retries, openBreakers atomic.Int64
	bar                   *counter
	json                  *jsonLines        // nil without --json
	board                 *breakerBoard     // the hosts whose breaker is not closed
	plain                 io.Writer         // where plain host lines go; nil on a terminal, with --json or --quiet
	stopLines             func()            // stops the plain host lines
	pacers                *rebound.PacerSet // per-host pacing, for the display
}

// breakerChanged counts the open breakers and reports the change.
func (p *runProgress) breakerChanged(host string, from, to rebound.State) {
	switch {
	case to == rebound.StateOpen && from == rebound.StateClosed:
		p.openBreakers.Add(1)
	case to == rebound.StateClosed:
		p.openBreakers.Add(-1)
	}
	h := hostState{host: host, state: to, waiting: p.board.waitingFor(host)}
	var nextProbe *int64 // ms until the next probe, while open
	if to == rebound.StateOpen && p.board.set != nil {
		if t := p.board.set.Get(host).NextProbe(); !t.IsZero() {
			h.nextProbe = max(time.Until(t), 0)
			nextProbe = waitMS(h.nextProbe)
		}
	}
	switch {
	case p.json != nil:
		ev := map[string]any{"event": "breaker", "host": redact.Printable(host), "from": from.String(), "to": to.String(),
			"state": to.String(), "items_waiting": h.waiting}
		if nextProbe != nil {
			ev["next_probe_ms"] = *nextProbe
		}
		p.json.write(ev)
	case p.plain != nil && to == rebound.StateOpen:
		fmt.Fprintf(p.plain, "rebound: %s\n", h.line())
	case p.plain != nil && to == rebound.StateClosed:
		fmt.Fprintf(p.plain, "rebound: host %s: closed, its items go on\n", redact.Printable(host))
	}
}

// event counts an item event and reports it (but the start of an attempt).
func (p *runProgress) event(e job.Event) {
	p.board.event(e)
	switch e.Type {
	case job.EventRetry:
		p.retries.Add(1)
	case job.EventDone, job.EventDead:
		p.bar.add(1)
	case job.EventStart:
		return
	}
	if p.json != nil {
		p.json.write(newRunEvent(e))
	}
}

// runConfig is the job.Config the flags describe, reporting to p.
func runConfig(name string, st checkpoint.Store, f *runFlags, p *runProgress) (job.Config, error) {
	breakers, err := rebound.NewBreakerSet(rebound.BreakerConfig{
		FailureThreshold: f.breakerFailures, OpenFor: f.breakerOpen, OnStateChange: p.breakerChanged,
	}, 0)
	if err != nil {
		return job.Config{}, usageErr(err)
	}
	p.board.set = breakers
	cfg := job.Config{
		Job: name, Store: st, Concurrency: f.concurrency, MaxAttempts: f.attempts, LeaseTTL: f.leaseTTL,
		// A file has one worker: items a crashed run held come back at
		// once (job.Run does so for every checkpoint.RunLocker). A shared
		// store has others alive: theirs come back when their leases
		// expire.
		Retry:    rebound.Retry{Backoff: backoffFor(f.wait, f.maxWait)},
		Breakers: breakers, BreakerKey: p.board.key, Grace: f.grace,
		OnEvent: p.event,
	}
	if err := cfg.Retry.Validate(); err != nil {
		return job.Config{}, usageErr(err)
	}
	if cfg.Rate, err = parseRate(f.rate); err != nil {
		return job.Config{}, usageErr(err)
	}
	cfg.Burst, cfg.MaxPerHost = f.burst, f.maxPerHost
	if f.noPacing {
		if cfg.Rate != 0 || cfg.MaxPerHost != 0 {
			return job.Config{}, usageErr(errors.New("--no-pacing cannot go with --rate or --max-per-host"))
		}
		cfg.DisablePacing = true
		return cfg, nil
	}
	if cfg.Pacers, err = job.NewPacers(cfg); err != nil {
		return job.Config{}, usageErr(err)
	}
	p.pacers = cfg.Pacers
	return cfg, nil
}

// backoffFor is the run's backoff: --backoff 0 retries at once (the
// library's zero Initial would mean its 1s default).
func backoffFor(initial, maxWait time.Duration) rebound.Backoff {
	if initial == 0 {
		return rebound.NoDelay
	}
	return rebound.Backoff{Initial: initial, Max: maxWait}
}

// hostOf keys an item's circuit breaker by the scheme and host it calls.
func hostOf(it checkpoint.Item) string {
	var r struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(it.Payload, &r); err != nil {
		return ""
	}
	if i := strings.Index(r.URL, "://"); i >= 0 {
		rest := r.URL[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = rest[at+1:]
		}
		return r.URL[:i] + "://" + rest
	}
	return ""
}

// newRunClient is reboundhttp's base client with the flags' timeouts (a body
// that goes silent is cut) and the safe redirect policy; retries, breakers
// and the budget are the job runner's, so it makes one attempt per call.
func newRunClient(f *runFlags) (*http.Client, error) {
	return reboundhttp.NewBaseClient(reboundhttp.Config{
		ConnectTimeout: f.connectTimeout, TLSHandshakeTimeout: f.connectTimeout,
		ResponseHeaderTimeout: f.readTimeout, StallTimeout: f.readTimeout,
		MaxIdleConnsPerHost: f.concurrency,
	})
}

func report(stdout, stderr io.Writer, jsonOut *jsonLines, name string, sum job.Summary, quiet bool) {
	s := sum.Stats
	if jsonOut != nil {
		jsonOut.write(map[string]any{"event": "summary", "job": name, "done": s.Done, "dead": s.Dead,
			"failed": s.Failed, "pending": s.Pending + s.Leased, "this_run_done": sum.Done,
			"this_run_retries": sum.Retries, "elapsed_ms": sum.Elapsed.Milliseconds()})
		return
	}
	if quiet {
		return
	}
	rate := 0.0
	if sec := sum.Elapsed.Seconds(); sec > 0 {
		rate = float64(sum.Done+sum.Dead) / sec
	}
	fmt.Fprintf(stderr, "rebound: %s: %d done, %d dead, %d left; this run: %d done, %d dead, %d retries in %s (%.0f items/s)\n",
		name, s.Done, s.Dead, s.Pending+s.Leased+s.Failed, sum.Done, sum.Dead, sum.Retries, sum.Elapsed.Round(time.Millisecond), rate)
}

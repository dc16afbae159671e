package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/postgres"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/job"
)

func newStatusCmd() *cobra.Command {
	var state, jobName string
	var asJSON bool
	var deadLimit int
	cmd := &cobra.Command{
		Use:   "status [MANIFEST.jsonl]",
		Short: "Show a job's progress: counts per state, throughput, common errors, dead items",
		Long: `status reads a job's state file and shows how far it got: items per state,
attempts, throughput, the most common errors, and the dead items with their
reasons. Items that wait to be tried again are counted as deferred, by
reason: their host's circuit breaker is open, their host throttled (asked
callers to wait), or after a failure; they are never dead. Give the manifest
(as for 'rebound run'), or --state and --job.
With a shared PostgreSQL state it also lists every worker: its live leases,
the items it finished and its rate.`,
		Example: `  rebound status users.jsonl
  rebound status --state .rebound/users.db --json
  rebound status --state postgres://db.internal/rebound --job users`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := state
			switch {
			case len(args) == 1:
				path = statePathFor(state, args[0])
				if jobName == "" {
					jobName = jobNameFor(args[0])
				}
			case path == "":
				path = os.Getenv("REBOUND_STATE")
			}
			if path == "" {
				return usageErr(errors.New("give a manifest, or --state FILE"))
			}
			if postgres.IsDSN(path) {
				if jobName == "" {
					return usageErr(errors.New("with a PostgreSQL state, give the manifest or --job NAME"))
				}
			} else {
				if jobName == "" {
					jobName = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
				}
				if _, err := os.Stat(path); err != nil {
					return usageErr(fmt.Errorf("state: %w (has 'rebound run' been started for this manifest?)", err))
				}
			}
			st, err := openStatusStore(cmd, path)
			if err != nil {
				return err
			}
			defer st.Close()
			return showStatus(cmd, st, jobName, asJSON, deadLimit)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "state file or postgres://… URL (default .rebound/<manifest name>.db beside the manifest; env REBOUND_STATE)")
	cmd.Flags().StringVar(&jobName, "job", "", "job name (default: the manifest's or state file's name)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().IntVar(&deadLimit, "dead", 20, "how many dead items to list (0: none, only the count)")
	return cmd
}

// openStatusStore opens the state for reading. A SQLite state that cannot
// be written (read-only file system, no permission) is healthy and worth
// showing: it is opened read-only, with a note that says why.
func openStatusStore(cmd *cobra.Command, path string) (stateStore, error) {
	if postgres.IsDSN(path) {
		return openStore(cmd.Context(), path)
	}
	st, err := sqlite.Open(path, checkpoint.Config{})
	if errors.Is(err, checkpoint.ErrReadOnly) {
		ro, rerr := sqlite.Open(path, checkpoint.Config{ReadOnly: true})
		if rerr == nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "rebound: %s cannot be written, showing it read-only: %v\n", path, err)
			return ro, nil
		}
		err = rerr
	}
	if err != nil {
		return nil, usageErr(err)
	}
	return st, nil
}

// statusReport is everything status shows about a job.
type statusReport struct {
	name     string
	stats    checkpoint.Stats
	deferred deferredCounts
	top      []checkpoint.ErrorCount // errors but those of deferred items
	dead     []checkpoint.Item
	workers  []checkpoint.WorkerStat
	rate     float64 // items per second; 0 when too few to tell
}

func showStatus(cmd *cobra.Command, st stateStore, name string, asJSON bool, deadLimit int) error {
	r, err := readStatus(cmd.Context(), st, name, deadLimit)
	if err != nil {
		return err
	}
	if asJSON {
		return r.writeJSON(cmd.OutOrStdout())
	}
	r.writeText(cmd.OutOrStdout())
	return nil
}

// readStatus reads the job's counts, top errors, first deadLimit dead items
// and (from a shared store) its workers.
func readStatus(ctx context.Context, st stateStore, name string, deadLimit int) (*statusReport, error) {
	r := &statusReport{name: name}
	var err error
	if r.stats, err = st.Stats(ctx, name); err != nil {
		if errors.Is(err, checkpoint.ErrNoJob) {
			return nil, usageErr(err)
		}
		return nil, err
	}
	// Every error group, to count the deferred items by why they wait;
	// their reasons are one text per host, so the groups are few.
	all, err := st.TopErrors(ctx, name, errorGroupsRead)
	if err != nil {
		return nil, err
	}
	r.deferred, r.top = groupDeferred(r.stats.Failed, all, 5)
	if deadLimit > 0 { // stores refuse a limit below 1; --dead 0 lists none
		if r.dead, err = st.Dead(ctx, name, deadLimit); err != nil {
			return nil, err
		}
	}
	if wl, ok := st.(checkpoint.WorkerLister); ok {
		if r.workers, err = wl.Workers(ctx, name); err != nil {
			return nil, err
		}
	}
	// Items per second between the first and the last completion: n of them
	// span n-1 intervals. A handful says nothing about a rate; show none.
	s := r.stats
	if d := s.LastDone.Sub(s.FirstDone).Seconds(); d > 0 && s.Done >= 10 {
		r.rate = float64(s.Done-1) / d
	}
	return r, nil
}

// errorGroupsRead is how many (kind, error) groups status reads to count the
// deferred items: beyond it, the rarest groups count as "after a failure".
const errorGroupsRead = 1000

// deferredCounts splits the Failed items (which wait to be tried again,
// never dead) by why they wait.
type deferredCounts struct {
	BreakerOpen int64 `json:"breaker_open"`  // their host's circuit breaker is open
	Throttled   int64 `json:"throttled"`     // their host asked callers to wait
	Other       int64 `json:"after_failure"` // a backoff after a failure, the retry budget, an interrupted run
	// BreakerHosts counts the items of BreakerOpen per host, where the
	// reason names it.
	BreakerHosts map[string]int64 `json:"breaker_open_hosts,omitempty"`
}

// groupDeferred counts the failed items by job.DeferGroup from the error
// groups all (most common first), and returns the first n groups that are
// not a deferral: the errors worth showing as errors.
func groupDeferred(failed int64, all []checkpoint.ErrorCount, n int) (deferredCounts, []checkpoint.ErrorCount) {
	var d deferredCounts
	var top []checkpoint.ErrorCount
	for _, e := range all {
		switch job.DeferGroup(e.Kind, e.Err) {
		case job.GroupBreakerOpen:
			d.BreakerOpen += e.Count
			if host := breakerHost(e.Err); host != "" {
				if d.BreakerHosts == nil {
					d.BreakerHosts = map[string]int64{}
				}
				d.BreakerHosts[host] += e.Count
			}
		case job.GroupThrottled:
			d.Throttled += e.Count
		default:
			if len(top) < n {
				top = append(top, e)
			}
		}
	}
	// Counts read apart from Stats may disagree by a few items when a run
	// is going on: never show a negative count.
	d.Other = max(failed-d.BreakerOpen-d.Throttled, 0)
	return d, top
}

// breakerHost is the host a breaker-open reason names: "deferred: circuit
// breaker open for HOST", or an earlier version's "circuit breaker HOST
// open: …"; "" when it names none.
func breakerHost(reason string) string {
	if h, ok := strings.CutPrefix(reason, job.ReasonBreakerOpen+" for "); ok {
		return redact.Printable(h)
	}
	if rest, ok := strings.CutPrefix(reason, "circuit breaker "); ok {
		if h, _, ok := strings.Cut(rest, " "); ok && h != "open:" && h != "half-open:" {
			return redact.Printable(h)
		}
	}
	return ""
}

// writeJSON prints status --json: one indented object.
func (r *statusReport) writeJSON(out io.Writer) error {
	type deadItem struct {
		ID       string `json:"id"`
		Attempts int    `json:"attempts"`
		Kind     string `json:"kind"`
		Err      string `json:"error"`
	}
	s := r.stats
	v := struct {
		Job        string           `json:"job"`
		Total      int64            `json:"total"`
		Pending    int64            `json:"pending"`
		Leased     int64            `json:"leased"`
		Done       int64            `json:"done"`
		Failed     int64            `json:"failed"`
		Deferred   deferredCounts   `json:"deferred"`
		Dead       int64            `json:"dead"`
		Attempts   int64            `json:"attempts"`
		PerSecond  float64          `json:"items_per_second"`
		TopErrors  []errorCountJSON `json:"top_errors"`
		DeadItems  []deadItem       `json:"dead_items"`
		Complete   bool             `json:"complete"`
		LastUpdate time.Time        `json:"last_done,omitzero"`
		Workers    []workerJSON     `json:"workers,omitempty"`
	}{Job: r.name, Total: s.Items(), Pending: s.Pending, Leased: s.Leased, Done: s.Done, Failed: s.Failed,
		Deferred: r.deferred, Dead: s.Dead, Attempts: s.Attempts, PerSecond: r.rate, TopErrors: []errorCountJSON{},
		Complete: s.Pending+s.Leased+s.Failed == 0, LastUpdate: s.LastDone, DeadItems: []deadItem{}}
	for _, e := range r.top {
		v.TopErrors = append(v.TopErrors, errorCountJSON{e.Kind, redact.Text(e.Err), e.Count})
	}
	for _, w := range r.workers {
		v.Workers = append(v.Workers, workerJSON{w, w.Rate()})
	}
	for _, d := range r.dead {
		v.DeadItems = append(v.DeadItems, deadItem{redact.Printable(d.ID), d.Attempts, d.ErrKind, redact.Text(d.Err)})
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeText prints status for a person: the counts as a table, then the
// workers, the most common errors and the dead items, where there are any.
func (r *statusReport) writeText(out io.Writer) {
	s := r.stats
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "job\t%s\n", r.name)
	fmt.Fprintf(tw, "items\t%d\n", s.Items())
	fmt.Fprintf(tw, "done\t%d\n", s.Done)
	fmt.Fprintf(tw, "pending\t%d\n", s.Pending)
	fmt.Fprintf(tw, "in flight\t%d\n", s.Leased)
	// Failed items wait to be tried again: deferred, by why, never dead.
	fmt.Fprintf(tw, "deferred, will retry\t%d\n", s.Failed)
	if d := r.deferred; s.Failed > 0 {
		for _, g := range []struct {
			name string
			n    int64
		}{{"  breaker open", d.BreakerOpen}, {"  throttled", d.Throttled}, {"  after a failure", d.Other}} {
			if g.n > 0 {
				fmt.Fprintf(tw, "%s\t%d\n", g.name, g.n)
			}
			if g.name == "  breaker open" {
				writeHosts(tw, d.BreakerHosts, 5)
			}
		}
	}
	fmt.Fprintf(tw, "dead\t%d\n", s.Dead)
	fmt.Fprintf(tw, "attempts\t%d\n", s.Attempts)
	if r.rate > 0 {
		fmt.Fprintf(tw, "throughput\t%.0f items/s\n", r.rate)
	}
	tw.Flush()
	if len(r.workers) > 0 {
		fmt.Fprintf(out, "\nworkers (%d):\n", len(r.workers))
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  worker\tleased\tdone\titems/s\tlast active")
		for _, w := range r.workers {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%.0f\t%s\n", w.Worker, w.Leased, w.Done, w.Rate(), w.LastActive.Local().Format(time.DateTime))
		}
		tw.Flush()
	}
	if len(r.top) > 0 {
		fmt.Fprintln(out, "\nmost common errors:")
		for _, e := range r.top {
			fmt.Fprintf(out, "  %6d  %s: %s\n", e.Count, e.Kind, redact.Text(e.Err))
		}
	}
	if len(r.dead) > 0 {
		fmt.Fprintf(out, "\ndead items (%d of %d; 'rebound run --retry-dead' tries them again):\n", len(r.dead), s.Dead)
		for _, d := range r.dead {
			fmt.Fprintf(out, "  %s  after %d attempt(s): %s\n", redact.Printable(d.ID), d.Attempts, redact.Text(d.Err))
		}
	}
}

// writeHosts writes the n hosts with the most items, most first.
func writeHosts(w io.Writer, hosts map[string]int64, n int) {
	keys := slices.SortedFunc(maps.Keys(hosts), func(a, b string) int {
		if c := cmp.Compare(hosts[b], hosts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for i, h := range keys {
		if i == n {
			fmt.Fprintf(w, "      (%d more hosts)\t\n", len(keys)-n)
			break
		}
		fmt.Fprintf(w, "      %s\t%d\n", h, hosts[h])
	}
}

// workerJSON is one worker in status --json.
type workerJSON struct {
	checkpoint.WorkerStat
	PerSecond float64 `json:"items_per_second"`
}

// errorCountJSON is one of status --json's top_errors, keyed like the rest of
// the object (checkpoint.ErrorCount has no JSON tags, so it came out as
// "Kind", "Err", "Count" beside dead_items' "kind" and "error").
type errorCountJSON struct {
	Kind  string `json:"kind"`
	Err   string `json:"error"`
	Count int64  `json:"count"`
}

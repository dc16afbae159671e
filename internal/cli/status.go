package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/postgres"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/internal/redact"
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
reasons. Give the manifest (as for 'rebound run'), or --state and --job.
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
	name    string
	stats   checkpoint.Stats
	top     []checkpoint.ErrorCount
	dead    []checkpoint.Item
	workers []checkpoint.WorkerStat
	rate    float64 // items per second; 0 when too few to tell
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
	if r.top, err = st.TopErrors(ctx, name, 5); err != nil {
		return nil, err
	}
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
		Dead       int64            `json:"dead"`
		Attempts   int64            `json:"attempts"`
		PerSecond  float64          `json:"items_per_second"`
		TopErrors  []errorCountJSON `json:"top_errors"`
		DeadItems  []deadItem       `json:"dead_items"`
		Complete   bool             `json:"complete"`
		LastUpdate time.Time        `json:"last_done,omitzero"`
		Workers    []workerJSON     `json:"workers,omitempty"`
	}{Job: r.name, Total: s.Items(), Pending: s.Pending, Leased: s.Leased, Done: s.Done, Failed: s.Failed,
		Dead: s.Dead, Attempts: s.Attempts, PerSecond: r.rate, TopErrors: []errorCountJSON{},
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
	fmt.Fprintf(tw, "failed, will retry\t%d\n", s.Failed)
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

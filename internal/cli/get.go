package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/transfer"
)

func init() { commands = append(commands, newGetCmd) }

// transferFlags are the flags get and upload share.
type transferFlags struct {
	startOver    bool
	jsonOut      bool
	stateDir     string
	stall        time.Duration
	attempts     int
	progressEach time.Duration
	headers      []string
}

func (f *transferFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.startOver, "start-over", false, "discard this transfer's saved progress and begin from byte 0")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON event per line on stdout (for scripts; waits as wait_ms) instead of a progress display")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory of the resume state files, one JSON file per transfer as the Go library keeps them (default: the user cache dir, rebound/transfers)")
	fl.DurationVar(&f.stall, "stall-timeout", transfer.DefaultStallTimeout, "cut and resume a transfer that moves no byte for this long")
	fl.IntVar(&f.attempts, "attempts", 5, "attempts in a row without progress before giving up")
	fl.DurationVar(&f.progressEach, "progress-interval", transfer.DefaultProgressInterval, "least time between two progress events")
	fl.StringArrayVarP(&f.headers, "header", "H", nil, `extra request header "Name: value" (repeatable; values are never logged)`)
}

// setup checks the flags and opens the state store: a
// transfer.FileStateStore in the state directory, the library's own format,
// so the CLI and a Go program resume each other's transfers. It also returns
// the directory (uploads keep their lock files there). An older CLI kept
// this state in transfers.db there: that file is no longer read and is left
// as it was; a transfer it was resuming starts over.
func (f *transferFlags) setup() (*transfer.FileStateStore, *rebound.Pipeline, http.Header, string, error) {
	if f.attempts < 1 {
		return nil, nil, nil, "", usageErr(errors.New("--attempts must be at least 1"))
	}
	if f.stall <= 0 {
		return nil, nil, nil, "", usageErr(errors.New("--stall-timeout must be positive"))
	}
	if f.progressEach <= 0 {
		return nil, nil, nil, "", usageErr(errors.New("--progress-interval must be positive"))
	}
	h := http.Header{}
	for _, line := range f.headers {
		k, v, ok := strings.Cut(line, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, nil, nil, "", usageErr(fmt.Errorf("--header %q is not \"Name: value\"", k))
		}
		h.Add(k, strings.TrimSpace(v))
	}
	dir := f.stateDir
	if dir == "" {
		var err error
		if dir, err = transfer.DefaultStateDir(); err != nil {
			return nil, nil, nil, "", usageErr(fmt.Errorf("%v; pass --state-dir", err))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if f.stateDir == "" {
			// The user never named this directory: say which flag moves it.
			return nil, nil, nil, "", usageErr(fmt.Errorf("state directory: %w; pass --state-dir", err))
		}
		return nil, nil, nil, "", usageErr(fmt.Errorf("state directory: %w", err))
	}
	store, err := transfer.NewFileStateStore(dir)
	if err != nil {
		return nil, nil, nil, "", usageErr(err)
	}
	return store, &rebound.Pipeline{Retry: rebound.Retry{MaxAttempts: f.attempts}}, h, dir, nil
}

// transferExit maps a transfer's error to the CLI's exit codes, and with
// --json also reports it as the last event, so a script reading the events
// sees why the transfer ended.
func transferExit(ctx context.Context, p *progress, verb string, err error) error {
	err = p.clean.err(transferExitCode(ctx, verb, err))
	if p.json != nil && err != nil {
		je := jsonEvent{Event: "error", Error: err.Error(), ExitCode: ExitFailed}
		var ee *exitError
		if errors.As(err, &ee) {
			je.ExitCode = ee.code
		}
		p.json.Encode(je)
	}
	return err
}

func transferExitCode(ctx context.Context, verb string, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return withCode(ExitInterrupted, fmt.Errorf("%s interrupted; progress is saved, run the same command again to resume", verb))
	case errors.Is(err, transfer.ErrFileExists):
		return usageErr(fmt.Errorf("%w\nhint: choose the output with -o FILE (a file named there is replaced once the download is complete), or move the file away", err))
	case errors.Is(err, transfer.ErrInvalid), errors.Is(err, transfer.ErrLocked):
		// Another get or upload of the same target runs: the error names
		// its pid. Like `run` on a locked state file, a usage error.
		return usageErr(err)
	}
	return withCode(ExitFailed, err)
}

func newGetCmd() *cobra.Command {
	var (
		tf     transferFlags
		output string
		sum    string
	)
	cmd := &cobra.Command{
		Use:   "get URL",
		Short: "Download a file, resuming where an earlier run stopped",
		Long: `get downloads URL to FILE (-o), or to a name taken from the server's
Content-Disposition or the URL, sanitised so that it stays in the current
directory (or the directory -o names). A name the server chose never replaces
a file that is already there (exit 2, nothing written); a FILE given with -o
is replaced once the download is complete.

The bytes go to FILE.part; the offset, the ETag / Last-Modified and the size
are saved, so running the same command again resumes with a Range request
that is honoured only if the file has not changed (If-Range). A server that
ignores ranges, or a file that changed, starts the download over; nothing is
ever appended that does not belong. A file whose size the server does not
give is done only when the server says there is no more. Broken or stalled
connections are resumed with jittered backoff. The finished file is fsynced
and renamed into place. A second get of the same FILE while one runs exits 2,
naming its pid.

Exit codes: 0 done, 1 failed for good, 2 usage error, 130 interrupted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sum != "" && !isSHA256Hex(sum) {
				return usageErr(errors.New("--sha256 must be 64 hex digits"))
			}
			store, pipe, header, _, err := tf.setup()
			if err != nil {
				return err
			}
			opts := transfer.DownloadOptions{Store: store, Pipeline: pipe, Header: header,
				StartOver: tf.startOver, SHA256: strings.ToLower(sum), StallTimeout: tf.stall,
				ProgressInterval: tf.progressEach}
			if output != "" {
				if fi, err := os.Stat(output); err == nil && fi.IsDir() {
					opts.Dir = output
				} else {
					opts.Path = output
				}
			}
			prog := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), tf.jsonOut, "get")
			prog.clean = newCleaner(args[0], header)
			opts.OnEvent = prog.event
			res, err := transfer.Download(cmd.Context(), args[0], opts)
			prog.close(err == nil)
			if err != nil {
				return transferExit(cmd.Context(), prog, "download", err)
			}
			if !tf.jsonOut {
				msg := fmt.Sprintf("get: saved %s (%d bytes", redact.Printable(res.Path), res.Size)
				if res.Resumed {
					msg += ", resumed"
				}
				if res.Restarts > 0 {
					msg += fmt.Sprintf(", restarted %d×", res.Restarts)
				}
				if res.Verified != "" {
					msg += ", verified " + res.Verified
				}
				fmt.Fprintln(cmd.ErrOrStderr(), msg+")")
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output file, or an existing directory to save into")
	cmd.Flags().StringVar(&sum, "sha256", "", "expected SHA-256 of the file (hex); a mismatch removes the download and fails")
	return cmd
}

// isSHA256Hex reports whether s is a SHA-256 in hex, either case.
func isSHA256Hex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// progress shows transfer events: a bar on a terminal, plain lines at most
// once a second otherwise, or JSON lines on stdout for scripts.
type progress struct {
	verb    string
	out     io.Writer // JSON events
	errw    io.Writer // bar and lines
	json    *json.Encoder
	bars    *mpb.Progress
	bar     *mpb.Bar
	lastSet time.Time
	start   time.Time
	startAt int64 // bytes already there when this run began
	lastLn  time.Time
	shown   int64 // the count the last plain line showed; -1 none
	clean   *cleaner
}

func newProgress(out, errw io.Writer, jsonOut bool, verb string) *progress {
	p := &progress{verb: verb, out: out, errw: errw, start: time.Now(), shown: -1}
	switch {
	case jsonOut:
		p.json = json.NewEncoder(out)
	default:
		p.bars = newBars(errw, mpb.WithWidth(40))
	}
	return p
}

// jsonEvent is the --json form of a transfer.Event.
type jsonEvent struct {
	Event   string `json:"event"`
	File    string `json:"file,omitempty"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Reason  string `json:"reason,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	WaitMS  *int64 `json:"wait_ms,omitempty"` // retry events only, 0 included
	Error   string `json:"error,omitempty"`
	URL     string `json:"url,omitempty"`
	// ExitCode is set on the last event of a failed transfer ("error").
	ExitCode int `json:"exit_code,omitempty"`
}

func (p *progress) event(ev transfer.Event) {
	if p.json != nil {
		je := jsonEvent{Event: string(ev.Type), File: redact.Printable(ev.Name), Done: ev.Done, Total: ev.Total,
			Reason: p.clean.text(ev.Reason), Attempt: ev.Attempt}
		if ev.Type == transfer.EventRetry {
			je.WaitMS = waitMS(ev.Wait)
		}
		if ev.Err != nil {
			je.Error = p.clean.text(ev.Err.Error())
		}
		p.json.Encode(je)
		return
	}
	switch ev.Type {
	case transfer.EventResume:
		p.startAt = ev.Done
		p.note(fmt.Sprintf("%s: resuming %s at %s", p.verb, filepath.Base(ev.Name), size(ev.Done)))
	case transfer.EventRestart:
		// The bytes so far are thrown away: the rate and ETA count from
		// here, or the time spent on them showed as a crawl (6 B/s, ETA 42h).
		p.startAt, p.start = 0, time.Now()
		p.note(fmt.Sprintf("%s: starting over: %s", p.verb, ev.Reason))
	case transfer.EventRetry:
		if ev.Wait > 0 {
			p.note(fmt.Sprintf("%s: attempt %d failed (%v); retrying in %v", p.verb, ev.Attempt, ev.Err, ev.Wait.Round(time.Millisecond)))
		} else {
			p.note(fmt.Sprintf("%s: connection lost at %s (%v); resuming", p.verb, size(ev.Done), ev.Err))
		}
	case transfer.EventProgress, transfer.EventDone:
		p.progress(ev)
	}
}

func (p *progress) note(s string) {
	s = p.clean.text(s)
	if p.bars != nil {
		fmt.Fprintln(p.bars, s) // printed above the live bar, not through it
		return
	}
	fmt.Fprintln(p.errw, s)
}

func (p *progress) progress(ev transfer.Event) {
	now := time.Now()
	if p.bars != nil {
		if p.bar == nil {
			p.bar = p.bars.AddBar(max(ev.Total, 0),
				mpb.PrependDecorators(decor.Name(p.verb+" "+filepath.Base(ev.Name)+" "), decor.CountersKibiByte("% .1f / % .1f")),
				mpb.AppendDecorators(decor.EwmaSpeed(decor.SizeB1024(0), " % .1f", 30), decor.Name(" ETA "), decor.EwmaETA(decor.ET_STYLE_GO, 30)))
			p.bar.SetCurrent(ev.Done)
		} else {
			p.bar.EwmaSetCurrent(ev.Done, now.Sub(p.lastSet))
		}
		p.lastSet = now
		if ev.Type == transfer.EventDone {
			p.bar.SetTotal(ev.Done, true)
		}
		return
	}
	if ev.Type != transfer.EventDone && now.Sub(p.lastLn) < time.Second {
		return
	}
	if ev.Type == transfer.EventDone && ev.Done == p.shown {
		// The last progress line already said it: a transfer that ends
		// with a progress event would otherwise print its last line twice.
		return
	}
	p.lastLn, p.shown = now, ev.Done
	line := fmt.Sprintf("%s: %s", p.verb, size(ev.Done))
	if ev.Total > 0 {
		line += fmt.Sprintf(" of %s (%d%%)", size(ev.Total), ev.Done*100/ev.Total)
	}
	if el := now.Sub(p.start).Seconds(); el > 0 && ev.Done > p.startAt {
		rate := float64(ev.Done-p.startAt) / el
		line += fmt.Sprintf(", %s/s", size(int64(rate)))
		if ev.Total > ev.Done && rate > 0 {
			line += fmt.Sprintf(", ETA %v", time.Duration(float64(ev.Total-ev.Done)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	fmt.Fprintln(p.errw, line)
}

func (p *progress) close(ok bool) {
	if p.bars == nil {
		return
	}
	if p.bar != nil && !ok {
		p.bar.Abort(false)
	}
	p.bars.Wait()
}

// size formats a byte count in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// terminalWidth reports whether w is a terminal and, if so, its width in
// columns: 0 when nobody gave the terminal a size (a bare pty, as under
// `script` or some CI runners).
func terminalWidth(w io.Writer) (width int, tty bool) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0, true
	}
	return width, true
}

// newBars returns a progress bar container drawing on w, or nil if w is not
// a terminal (callers then write plain lines). opts come after ours.
func newBars(w io.Writer, opts ...mpb.ContainerOption) *mpb.Progress {
	width, tty := terminalWidth(w)
	if !tty {
		return nil
	}
	base := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithRefreshRate(200 * time.Millisecond)}
	if width <= 0 {
		// mpb reads the size itself and draws nothing on a terminal of 0
		// rows; hide the file from it and draw 80 columns, still redrawn
		// in place (ForceTTY does not turn auto refresh on, whatever its doc
		// says).
		base = append(base, mpb.WithOutput(struct{ io.Writer }{w}), mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithWidth(80))
	}
	return mpb.New(append(base, opts...)...)
}

// jsonLines writes one JSON object per line, safe for concurrent use.
type jsonLines struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newJSONLines(w io.Writer) *jsonLines { return &jsonLines{enc: json.NewEncoder(w)} }

func (j *jsonLines) write(v any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(v)
}

// counter shows a count towards a total: a bar with rate and ETA on a
// terminal, a plain line every interval otherwise, nothing when quiet.
type counter struct {
	bar   *mpb.Bar
	prog  *mpb.Progress
	extra func() string // appended to every display, e.g. retries and breakers

	mu      sync.Mutex
	w       io.Writer
	label   string
	done    int64
	total   int64
	start   time.Time
	last    time.Time
	every   time.Duration
	enabled bool
}

func newCounter(w io.Writer, label string, total int64, quiet bool, extra func() string) *counter {
	c := &counter{w: w, label: label, total: total, start: time.Now(), every: 5 * time.Second, enabled: !quiet, extra: extra}
	c.last = c.start
	if quiet {
		return c
	}
	if c.prog = newBars(w); c.prog == nil {
		return c
	}
	c.bar = c.prog.AddBar(total,
		mpb.PrependDecorators(decor.Name(label+" "), decor.CountersNoUnit("%d / %d")),
		mpb.AppendDecorators(
			decor.AverageSpeed(nil, " %.0f/s"),
			decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO),
			decor.Any(func(decor.Statistics) string { return " " + extra() }),
		),
	)
	return c
}

// add counts n more finished items.
func (c *counter) add(n int64) {
	if !c.enabled {
		return
	}
	if c.bar != nil {
		c.bar.IncrInt64(n)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done += n
	if now := time.Now(); now.Sub(c.last) >= c.every {
		c.last = now
		c.lineLocked(now)
	}
}

func (c *counter) lineLocked(now time.Time) {
	el := now.Sub(c.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(c.done) / el
	}
	fmt.Fprintf(c.w, "%s %d/%d (%.0f/s) %s\n", c.label, c.done, c.total, rate, c.extra())
}

// finish stops the display; a plain display writes its last line.
func (c *counter) finish() {
	if !c.enabled {
		return
	}
	if c.bar != nil {
		c.bar.Abort(false)
		c.prog.Wait()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lineLocked(time.Now())
}

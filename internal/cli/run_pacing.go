package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
)

// parseRate reads --rate: "N/s", "N/m" (or "N/min"), or a bare N per
// second; N may be a decimal. It returns requests per second; "" and "0"
// mean no cap.
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	per := 1.0
	switch strings.TrimSpace(unit) {
	case "", "s", "sec", "second":
	case "m", "min", "minute":
		per = 60
	case "h", "hour":
		per = 3600
	default:
		return 0, fmt.Errorf("--rate %q: the unit is /s, /m or /h", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 || n != n || n > 1e9 {
		return 0, fmt.Errorf("--rate %q: want a number of requests per second or minute, e.g. 100/s or 600/m", s)
	}
	return n / per, nil
}

// pacedHost is one host's pacing, for the display and --json.
type pacedHost struct {
	key string
	s   rebound.PaceStats
}

// pacedHosts lists the hosts whose pacing shows: throttled, paused or
// with items waiting; the most throttled first.
func (p *runProgress) pacedHosts(now time.Time) []pacedHost {
	if p.pacers == nil {
		return nil
	}
	var hs []pacedHost
	p.pacers.Each(func(k string, pc *rebound.Pacer) {
		s := pc.Stats(now)
		if s.Throttled > 0 || s.Waiting > 0 || !s.PausedUntil.IsZero() {
			hs = append(hs, pacedHost{redact.Printable(k), s})
		}
	})
	slices.SortFunc(hs, func(a, b pacedHost) int {
		if a.s.Throttled != b.s.Throttled {
			return int(b.s.Throttled - a.s.Throttled)
		}
		return strings.Compare(a.key, b.key)
	})
	return hs
}

// pacingLine is the progress display's pacing part: up to two paced
// hosts, e.g. "; host https://api.example: limit 12, 3 waiting, 40
// throttled, paused 2s, 250/s".
func (p *runProgress) pacingLine() string {
	now := time.Now()
	hs := p.pacedHosts(now)
	var b strings.Builder
	for i, h := range hs {
		if i == 2 {
			fmt.Fprintf(&b, "; %d more paced hosts", len(hs)-2)
			break
		}
		fmt.Fprintf(&b, "; host %s: limit %d, %d waiting, %d throttled", h.key, h.s.Limit, h.s.Waiting, h.s.Throttled)
		if !h.s.PausedUntil.IsZero() {
			fmt.Fprintf(&b, ", paused %s", h.s.PausedUntil.Sub(now).Round(time.Second))
		}
		if h.s.Rate > 0 {
			fmt.Fprintf(&b, ", %.0f/s", h.s.Rate)
		}
	}
	return b.String()
}

// writePacing writes one --json "pacing" event per paced host.
func (p *runProgress) writePacing() {
	if p.json == nil {
		return
	}
	now := time.Now()
	for _, h := range p.pacedHosts(now) {
		ev := map[string]any{"event": "pacing", "host": h.key, "limit": h.s.Limit, "in_flight": h.s.InFlight,
			"waiting": h.s.Waiting, "throttled": h.s.Throttled}
		if h.s.Rate > 0 {
			ev["rate_per_s"] = h.s.Rate
		}
		if !h.s.PausedUntil.IsZero() {
			ev["paused_ms"] = h.s.PausedUntil.Sub(now).Milliseconds()
		}
		p.json.write(ev)
	}
}

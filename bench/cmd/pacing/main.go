// Command pacing measures issue 13's pacing targets on loopback and prints
// Markdown tables: the real CLI (`rebound run`, fixed concurrency as it is
// today) and plain net/http under failsafe-go's adaptive limiter, side by
// side against the same hidden-capacity servers, and reboundhttp callers
// through an outage. Run it from the bench module:
//
//	go run ./cmd/pacing -scenario all
//	go run ./cmd/pacing -scenario ratelimited -items 1500
//
// Every run is bounded by -cap (and the outage by -outage + -recovery); the
// whole command stops by itself. The CLI is built once from the root module
// (or taken from -rebound).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"time"

	"github.com/rebound-go/rebound/bench/pacing"
)

func main() {
	scenario := flag.String("scenario", "all", "ratelimited, announced, degraded, outage, or all")
	items := flag.Int("items", 0, "items per batch scenario (0: the target's: 3000, 500, 500)")
	capRun := flag.Duration("cap", 120*time.Second, "time cap per batch run (the CLI gets SIGINT at it)")
	outage := flag.Duration("outage", 20*time.Second, "outage length")
	recovery := flag.Duration("recovery", 90*time.Second, "how long after the outage to wait for every caller to recover")
	callers := flag.Int("callers", 100, "outage callers")
	clients := flag.String("clients", "cli,failsafe", "batch clients: cli, failsafe")
	bin := flag.String("rebound", "", "rebound binary (default: built from the root module)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tmp, err := os.MkdirTemp("", "rebound-pacing-")
	check(err)
	defer os.RemoveAll(tmp)

	want := func(s string) bool { return *scenario == "all" || *scenario == s }
	use := func(c string) bool { return strings.Contains(","+*clients+",", ","+c+",") }
	if *bin == "" && use("cli") && (want("ratelimited") || want("announced") || want("degraded")) {
		root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/rebound-go/rebound").Output()
		check(err)
		*bin, err = pacing.BuildCLI(ctx, strings.TrimSpace(string(root)), tmp)
		check(err)
	}
	fmt.Printf("date %s; %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.Join(os.Args[1:], " "))

	type batch struct {
		name     string
		server   func() *pacing.Server
		n        int
		capacity float64 // req/s; 0: not rate-limited
		cliArgs  []string
		fs       pacing.FailsafeConfig
	}
	nOr := func(def int) int {
		if *items > 0 {
			return *items
		}
		return def
	}
	batches := []batch{
		{"ratelimited", func() *pacing.Server { return pacing.RateLimited(300, 30) }, nOr(3000), 300,
			[]string{"--concurrency", "64"}, pacing.FailsafeConfig{Workers: 64, Attempts: 5, Backoff: time.Second, ReadTimeout: 30 * time.Second}},
		{"announced", func() *pacing.Server { return pacing.Announced(100) }, nOr(500), 100,
			[]string{"--concurrency", "32"}, pacing.FailsafeConfig{Workers: 32, Attempts: 5, Backoff: time.Second, ReadTimeout: 30 * time.Second}},
		{"degraded", func() *pacing.Server {
			return pacing.Degraded(pacing.DegradedConfig{FailShare: 0.5, Slow: 3 * time.Second, Seed: 1})
		}, nOr(500), 0,
			[]string{"--read-timeout", "2s"}, pacing.FailsafeConfig{Workers: 8, Attempts: 5, Backoff: time.Second, ReadTimeout: 2 * time.Second}},
	}
	header := false
	for _, b := range batches {
		if !want(b.name) {
			continue
		}
		if !header {
			fmt.Println("| scenario | client | items | done | applied | 95 % applied at s | time s | ideal s | × ideal | goodput / capacity | requests | 429 % | applied twice | note |")
			fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
			header = true
		}
		for _, c := range []string{"cli", "failsafe"} {
			if !use(c) || ctx.Err() != nil {
				continue
			}
			srv := b.server()
			var res pacing.Result
			label := ""
			if c == "cli" {
				dir, err := os.MkdirTemp(tmp, b.name)
				check(err)
				res, err = pacing.RunCLI(ctx, *bin, dir, srv, b.n, *capRun, b.cliArgs...)
				check(err)
				label = "`rebound run " + strings.Join(b.cliArgs, " ") + "`"
			} else {
				b.fs.Deadline = *capRun
				res = pacing.RunFailsafe(ctx, srv, b.n, b.fs)
				label = fmt.Sprintf("failsafe adaptivelimiter, %d workers", b.fs.Workers)
			}
			srv.Close()
			fmt.Println(row(b.name, label, b.capacity, res, *capRun))
		}
	}
	if header {
		fmt.Println()
	}

	if want("outage") && ctx.Err() == nil {
		fmt.Printf("outage: %d callers, each a loop of GETs with 100 ms between calls; every request 503 for %v, then 200\n\n", *callers, *outage)
		fmt.Println("| callers | outage load req/s | first caller ok after s | median caller s | last caller s | recovered |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
		for _, kind := range []string{pacing.CallerNetHTTP, pacing.CallerFailsafe, pacing.CallerReboundHTTP} {
			if ctx.Err() != nil {
				break
			}
			r, err := pacing.RunOutage(ctx, kind, pacing.OutageConfig{Callers: *callers, Outage: *outage, Pause: 100 * time.Millisecond, MaxRecovery: *recovery})
			check(err)
			fmt.Printf("| %s | %.0f | %s | %s | %s | %d/%d |\n", kind, r.OutageLoad, secs(r.First, *recovery), secs(r.Median, *recovery), secs(r.Last, *recovery), r.Recovered, *callers)
		}
	}
}

func row(name, label string, capacity float64, r pacing.Result, capRun time.Duration) string {
	ideal, ratio, good := "–", "–", "–"
	t := fmt.Sprintf("%.1f", r.Elapsed.Seconds())
	if r.Capped {
		t = fmt.Sprintf("≥ %.0f (cap)", capRun.Seconds())
	}
	if capacity > 0 {
		id := float64(r.Items) / capacity
		ideal = fmt.Sprintf("%.1f", id)
		if !r.Capped {
			ratio = fmt.Sprintf("%.2f", r.Elapsed.Seconds()/id)
		} else {
			ratio = fmt.Sprintf("≥ %.1f", capRun.Seconds()/id)
		}
		good = fmt.Sprintf("%.2f", float64(r.Server.Applied)/r.Elapsed.Seconds()/capacity)
	}
	share := 0.0
	if r.Server.Requests > 0 {
		share = 100 * float64(r.Server.Throttled) / float64(r.Server.Requests)
	}
	a95 := "never"
	if r.Applied95 >= 0 {
		a95 = fmt.Sprintf("%.1f", r.Applied95.Seconds())
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d (%.1f %%) | %s | %s | %s | %s | %s | %d | %.1f | %d | %s |",
		name, label, r.Items, r.Done, r.Server.Applied, 100*float64(r.Server.Applied)/float64(r.Items), a95, t, ideal, ratio, good,
		r.Server.Requests, share, r.Server.Twice, r.Note)
}

func secs(d, limit time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("> %.0f", limit.Seconds())
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "pacing:", err)
		os.Exit(1)
	}
}

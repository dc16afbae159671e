package reboundhttp_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

var rlNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       map[string]string
		rem     int
		over    time.Duration
		ok      bool
		quota   int64
		windowS int64
	}{
		{"ietf both", map[string]string{"RateLimit-Policy": `"default";q=100;w=60`, "RateLimit": `"default";r=50;t=30`}, 50, 30 * time.Second, true, 100, 60},
		{"ietf policy only", map[string]string{"RateLimit-Policy": `"burst";q=100;w=1, "day";q=1000;w=86400`}, 1000, 24 * time.Hour, true, 1000, 86400},
		{"ietf token name and pk", map[string]string{"RateLimit": `day;r=0;t=5;pk=:cHsdsRa894==:`}, 0, 5 * time.Second, true, 0, 0},
		{"ietf fewest remaining wins", map[string]string{"RateLimit": `"a";r=9;t=1, "b";r=3;t=10`}, 3, 10 * time.Second, true, 0, 0},
		{"x seconds", map[string]string{"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "2"}, 7, 2 * time.Second, true, 100, 2},
		{"x unix", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1796126430"}, 0, 30 * time.Second, true, 0, 0},
		{"x unix past", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1796126000"}, 0, time.Second, true, 0, 0},
		{"x unix ms", map[string]string{"X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "1796126401500"}, 4, 1500 * time.Millisecond, true, 0, 0},
		{"x decimal seconds", map[string]string{"X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "0.5"}, 4, 500 * time.Millisecond, true, 0, 0},
		{"old draft names", map[string]string{"RateLimit-Remaining": "4", "RateLimit-Reset": "3", "RateLimit-Limit": "10, 10;w=3"}, 4, 3 * time.Second, true, 10, 3},
		{"huge reset capped", map[string]string{"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "999999999"}, 1, rebound.RetryAfterCeiling, true, 0, 0},
		{"malformed ignored", map[string]string{"RateLimit": `"a";r=x`, "RateLimit-Policy": `"a";q=-1`}, 0, 0, false, 0, 0},
		{"negative reset", map[string]string{"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "-3"}, 0, 0, false, 0, 0},
		{"none", map[string]string{}, 0, 0, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.h {
				h.Set(k, v)
			}
			a, ok := reboundhttp.ParseRateLimit(h, rlNow)
			rem, over, _ := a.Pace()
			if ok != tc.ok || (ok && (rem != tc.rem || over != tc.over)) {
				t.Errorf("Pace() = %d over %v (%v), want %d over %v (%v); %+v", rem, over, ok, tc.rem, tc.over, tc.ok, a)
			}
			if a.Quota != tc.quota || a.Window != time.Duration(tc.windowS)*time.Second {
				t.Errorf("policy %d per %v, want %d per %ds", a.Quota, a.Window, tc.quota, tc.windowS)
			}
		})
	}
}

func TestParseRateLimitPolicyRejects(t *testing.T) {
	for _, v := range []string{`"a";q=1,`, `"a`, `"a";Q=1`, `"a";q=1 "b"`, "\"a\x01\";q=1", `"a";q=1234567890123456`, `(1 2)`} {
		if ps, err := reboundhttp.ParseRateLimitPolicy(v); err == nil {
			t.Errorf("%q accepted: %v", v, ps)
		}
	}
}

// FuzzParseRateLimitPolicy: every policy the parser accepts has a positive
// quota and a window of whole seconds in (0, RetryAfterCeiling], and
// serialises to a value that parses back to the same policies.
func FuzzParseRateLimitPolicy(f *testing.F) {
	for _, s := range []string{`"default";q=100;w=60`, `a;q=1, "b\"c";q=2;w=3;pk=:AAA=:`, `"x";q=5;qu="requests";w=999999999999`, `1;q=1`, `"";q=1;w=0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ps, err := reboundhttp.ParseRateLimitPolicy(v)
		if err != nil {
			return
		}
		var parts []string
		for _, p := range ps {
			if p.Quota <= 0 || p.Window <= 0 || p.Window > rebound.RetryAfterCeiling || p.Window%time.Second != 0 {
				t.Fatalf("%q: policy %+v out of bounds", v, p)
			}
			parts = append(parts, p.String())
		}
		again, err := reboundhttp.ParseRateLimitPolicy(strings.Join(parts, ", "))
		if err != nil || len(again) != len(ps) {
			t.Fatalf("%q: re-serialised %q does not parse back: %v %v", v, strings.Join(parts, ", "), again, err)
		}
		for i := range ps {
			if again[i] != ps[i] {
				t.Fatalf("%q: %+v re-parsed as %+v", v, ps[i], again[i])
			}
		}
	})
}

// FuzzParseRateLimit: whatever the headers say, an announcement never asks
// for a wait beyond the cap, never a negative count, and whatever it tells
// a pacer is a positive span.
func FuzzParseRateLimit(f *testing.F) {
	f.Add(`"d";q=100;w=60`, `"d";r=50;t=30`, "100", "7", "1796126430")
	f.Add("", "", "10", "0", "0.25")
	f.Add(`x;q=1`, `x;r=-1;t=5`, "", "5", "99999999999999999")
	f.Fuzz(func(t *testing.T, policy, rl, limit, remaining, reset string) {
		h := http.Header{}
		for k, v := range map[string]string{"RateLimit-Policy": policy, "RateLimit": rl,
			"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset} {
			if v != "" {
				h.Set(k, v)
			}
		}
		a, ok := reboundhttp.ParseRateLimit(h, rlNow)
		if a.Reset < 0 || a.Reset > rebound.RetryAfterCeiling || a.Window < 0 || a.Window > rebound.RetryAfterCeiling {
			t.Fatalf("%+v: a wait beyond the cap", a)
		}
		if a.Remaining < -1 || a.Quota < 0 {
			t.Fatalf("%+v: a negative count", a)
		}
		rem, over, ok2 := a.Pace()
		if ok != ok2 || (ok && (rem < 0 || over <= 0)) {
			t.Fatalf("%+v: Pace() = %d, %v, %v", a, rem, over, ok2)
		}
	})
}

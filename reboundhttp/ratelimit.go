package reboundhttp

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rebound-go/rebound"
)

// Announcement is what a response says of its host's rate limit, read by
// ParseRateLimit. A Transport paces the host to it before the first 429
// (rebound.Pacer.Announce).
type Announcement struct {
	// Remaining is how many requests the server still allows before Reset;
	// -1 when the response does not say.
	Remaining int64
	// Reset is how long until the quota is renewed; 0 when not said.
	Reset time.Duration
	// Quota is the policy's number of requests per Window
	// (RateLimit-Policy, or an X-RateLimit-Limit with a Reset); zero
	// when not said.
	Quota int64
	// Window is the span Quota is counted over; zero when not said.
	Window time.Duration
}

// Pace returns what to tell a rebound.Pacer: requests remaining and the
// time they must last (Remaining over Reset when said, else the policy's
// Quota over Window), and whether there is anything to tell.
func (a Announcement) Pace() (remaining int, over time.Duration, ok bool) {
	switch {
	case a.Remaining >= 0 && a.Reset > 0:
		return int(min(a.Remaining, math.MaxInt32)), a.Reset, true
	case a.Quota > 0 && a.Window > 0:
		return int(min(a.Quota, math.MaxInt32)), a.Window, true
	}
	return 0, 0, false
}

// maxAnnounced bounds an announced reset or window, as ParseRetryAfter
// bounds a Retry-After.
const maxAnnounced = rebound.RetryAfterCeiling

// ParseRateLimit reads the rate limit a response announces, at now:
//
//   - the IETF fields (draft-ietf-httpapi-ratelimit-headers-08 and later,
//     structured-field lists): RateLimit-Policy: "default";q=100;w=60
//     (quota q per window of w seconds) and RateLimit: "default";r=50;t=30
//     (r remaining, reset in t seconds); with several policies, the one
//     that runs out first (the fewest remaining, then the longest reset);
//   - the common X-RateLimit-Limit, X-RateLimit-Remaining and
//     X-RateLimit-Reset (and the older drafts' RateLimit-Limit, -Remaining
//     and -Reset). X-RateLimit-Reset is either seconds until the reset or
//     the reset's Unix time, which no header says: a value of 1,000,000,000
//     or more (September 2001 as a Unix time, 31 years as a wait) is taken
//     as a Unix time (in milliseconds from 1,000,000,000,000), anything
//     smaller as seconds (a decimal fraction allowed). A Unix time already
//     past means the reset is due: a Reset of 1 s.
//
// Resets and windows are capped at rebound.RetryAfterCeiling (24 h).
// Malformed fields are ignored (ok false when nothing usable is left).
func ParseRateLimit(h http.Header, now time.Time) (a Announcement, ok bool) {
	a.Remaining = -1
	if v := h["Ratelimit-Policy"]; len(v) > 0 {
		if ps, err := ParseRateLimitPolicy(strings.Join(v, ", ")); err == nil {
			for _, p := range ps {
				// The strictest policy: the fewest requests per second.
				if a.Quota == 0 || float64(p.Quota)/p.Window.Seconds() < float64(a.Quota)/a.Window.Seconds() {
					a.Quota, a.Window = p.Quota, p.Window
				}
			}
		}
	}
	if v := h["Ratelimit"]; len(v) > 0 {
		if items, err := parseSFList(strings.Join(v, ", ")); err == nil {
			for _, it := range items {
				r, okR := it.param("r")
				t, okT := it.param("t")
				if !okR || !okT || r < 0 || t < 0 {
					continue
				}
				reset := secondsCapped(t)
				if a.Remaining < 0 || r < a.Remaining || (r == a.Remaining && reset > a.Reset) {
					a.Remaining, a.Reset = r, reset
				}
			}
		}
	}
	if a.Remaining < 0 {
		// Canonical keys, indexed directly: no allocation per response.
		for _, k := range [...][3]string{
			{"X-Ratelimit-Remaining", "X-Ratelimit-Reset", "X-Ratelimit-Limit"},
			{"Ratelimit-Remaining", "Ratelimit-Reset", "Ratelimit-Limit"},
		} {
			rem, okRem := leadingInt(first(h, k[0]))
			if !okRem {
				continue
			}
			reset, okReset := parseReset(first(h, k[1]), now)
			if !okReset {
				continue
			}
			a.Remaining, a.Reset = rem, reset
			if lim, ok := leadingInt(first(h, k[2])); ok && lim > 0 && a.Quota == 0 {
				// The window is unsaid; the reset is the most it can be.
				a.Quota, a.Window = lim, reset
			}
			break
		}
	}
	_, _, ok = a.Pace()
	return a, ok
}

func first(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// parseReset reads an X-RateLimit-Reset: seconds until, or a Unix time.
func parseReset(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		switch {
		case n < 0:
			return 0, false
		case n >= 1_000_000_000_000: // Unix milliseconds
			return untilUnix(time.UnixMilli(n), now), true
		case n >= 1_000_000_000: // Unix seconds
			return untilUnix(time.Unix(n, 0), now), true
		}
		return secondsCapped(n), true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f >= 1_000_000_000 || math.IsNaN(f) {
		return 0, false
	}
	d := time.Duration(f * float64(time.Second))
	return min(d, maxAnnounced), true
}

func untilUnix(t, now time.Time) time.Duration {
	d := t.Sub(now)
	if d <= 0 {
		return time.Second // due already: the next window is about to begin
	}
	return min(d, maxAnnounced)
}

func secondsCapped(n int64) time.Duration {
	if n > int64(maxAnnounced/time.Second) {
		return maxAnnounced
	}
	return time.Duration(n) * time.Second
}

// leadingInt reads the integer a header value starts with ("100" or the
// older drafts' "100, 100;w=60").
func leadingInt(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == 0 || i > 15 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	return n, err == nil
}

// RateLimitPolicy is one policy of a RateLimit-Policy field: Quota requests
// per Window, named Name.
type RateLimitPolicy struct {
	Name   string        // the policy's name (a structured-field string)
	Quota  int64         // q: positive
	Window time.Duration // w: positive, whole seconds, at most rebound.RetryAfterCeiling
}

// String serialises the policy as a RateLimit-Policy list member, which
// ParseRateLimitPolicy reads back to the same policy.
func (p RateLimitPolicy) String() string {
	var b strings.Builder
	b.WriteString(strconv.Quote(p.Name)) // the name holds only printable ASCII
	b.WriteString(";q=")
	b.WriteString(strconv.FormatInt(p.Quota, 10))
	b.WriteString(";w=")
	b.WriteString(strconv.FormatInt(int64(p.Window/time.Second), 10))
	return b.String()
}

// errRateLimitField is a RateLimit-Policy or RateLimit field that is not
// a structured-field list of the draft's shape.
var errRateLimitField = errors.New("reboundhttp: malformed rate-limit field")

// ParseRateLimitPolicy parses a RateLimit-Policy field value: a
// structured-field list of policies such as "default";q=100;w=60. A policy
// without a positive q is dropped; w defaults to 1 s when absent, as
// nothing else is said, and is capped at rebound.RetryAfterCeiling. A value
// that is not a structured-field list is an error.
func ParseRateLimitPolicy(v string) ([]RateLimitPolicy, error) {
	items, err := parseSFList(v)
	if err != nil {
		return nil, err
	}
	var out []RateLimitPolicy
	for _, it := range items {
		q, ok := it.param("q")
		if !ok || q <= 0 {
			continue
		}
		w, ok := it.param("w")
		if !ok {
			w = 1
		}
		if w <= 0 {
			continue
		}
		out = append(out, RateLimitPolicy{Name: it.name, Quota: q, Window: secondsCapped(w)})
	}
	return out, nil
}

// sfItem is one member of a structured-field list (RFC 8941) as the
// rate-limit fields use it: a string or token, with parameters of which
// only the integer ones are kept.
type sfItem struct {
	name   string
	params []sfParam
}

type sfParam struct {
	key string
	n   int64
	int bool
}

func (it sfItem) param(key string) (int64, bool) {
	for i := len(it.params) - 1; i >= 0; i-- { // the last of duplicates wins
		if p := it.params[i]; p.key == key {
			return p.n, p.int
		}
	}
	return 0, false
}

// parseSFList parses a structured-field list of items (no inner lists).
func parseSFList(s string) ([]sfItem, error) {
	p := sfParser{s: s}
	p.skipSP()
	var out []sfItem
	for !p.done() {
		it, err := p.item()
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		p.skipOWS()
		if p.done() {
			break
		}
		if p.s[p.i] != ',' {
			return nil, errRateLimitField
		}
		p.i++
		p.skipOWS()
		if p.done() {
			return nil, errRateLimitField // a trailing comma
		}
	}
	return out, nil
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) skipSP() {
	for !p.done() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) item() (sfItem, error) {
	var it sfItem
	var err error
	switch {
	case p.done():
		return it, errRateLimitField
	case p.s[p.i] == '"':
		it.name, err = p.str()
	case isAlpha(p.s[p.i]) || p.s[p.i] == '*':
		it.name = p.token()
	case p.s[p.i] == '-' || isDigit(p.s[p.i]):
		// An integer item (older servers): kept by its text.
		start := p.i
		if _, _, err = p.number(); err == nil {
			it.name = p.s[start:p.i]
		}
	default:
		return it, errRateLimitField
	}
	if err != nil {
		return it, err
	}
	for !p.done() && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		if p.done() || !(isLower(p.s[p.i]) || p.s[p.i] == '*') {
			return it, errRateLimitField
		}
		start := p.i
		for !p.done() && (isLower(p.s[p.i]) || isDigit(p.s[p.i]) || strings.IndexByte("_-.*", p.s[p.i]) >= 0) {
			p.i++
		}
		param := sfParam{key: p.s[start:p.i]}
		if !p.done() && p.s[p.i] == '=' {
			p.i++
			if err := p.paramValue(&param); err != nil {
				return it, err
			}
		}
		it.params = append(it.params, param)
	}
	return it, nil
}

func (p *sfParser) paramValue(param *sfParam) error {
	if p.done() {
		return errRateLimitField
	}
	c := p.s[p.i]
	switch {
	case c == '"':
		_, err := p.str()
		return err
	case c == '-' || isDigit(c):
		n, isInt, err := p.number()
		param.n, param.int = n, isInt
		return err
	case c == '?':
		p.i++
		if p.done() || (p.s[p.i] != '0' && p.s[p.i] != '1') {
			return errRateLimitField
		}
		p.i++
		return nil
	case c == ':': // a byte sequence (pk)
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return errRateLimitField
		}
		for _, b := range []byte(p.s[p.i+1 : p.i+1+end]) {
			if !isAlpha(b) && !isDigit(b) && b != '+' && b != '/' && b != '=' {
				return errRateLimitField
			}
		}
		p.i += end + 2
		return nil
	case isAlpha(c) || c == '*':
		p.token()
		return nil
	}
	return errRateLimitField
}

// str reads an sf-string: printable ASCII in quotes, \" and \\ escaped.
func (p *sfParser) str() (string, error) {
	p.i++ // the opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.done() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return "", errRateLimitField
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", errRateLimitField
		default:
			b.WriteByte(c)
		}
	}
	return "", errRateLimitField
}

func (p *sfParser) token() string {
	start := p.i
	p.i++
	for !p.done() && (isAlpha(p.s[p.i]) || isDigit(p.s[p.i]) || strings.IndexByte("!#$%&'*+-.^_`|~:/", p.s[p.i]) >= 0) {
		p.i++
	}
	return p.s[start:p.i]
}

// number reads an sf-integer (at most 15 digits) or sf-decimal; isInt says
// which.
func (p *sfParser) number() (n int64, isInt bool, err error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for !p.done() && isDigit(p.s[p.i]) {
		p.i++
	}
	if p.i == digits || p.i-digits > 15 {
		return 0, false, errRateLimitField
	}
	if !p.done() && p.s[p.i] == '.' {
		if p.i-digits > 12 {
			return 0, false, errRateLimitField
		}
		p.i++
		frac := p.i
		for !p.done() && isDigit(p.s[p.i]) {
			p.i++
		}
		if p.i == frac || p.i-frac > 3 {
			return 0, false, errRateLimitField
		}
		return 0, false, nil
	}
	n, err = strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil {
		return 0, false, errRateLimitField
	}
	return n, true, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool { return isLower(c) || (c >= 'A' && c <= 'Z') }

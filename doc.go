// Package rebound makes network calls fault-tolerant: it classifies errors by
// meaning (Classify: retry a reset connection or a 503, never a 401), retries
// with jittered exponential backoff (Retry, Backoff), caps retries across
// callers (Budget), stops calling a failing service for a while (Breaker,
// BreakerSet), bounds each attempt with a timeout, and degrades with a
// fallback: all composed by a Pipeline.
//
// Every config's zero value is the documented default, taken from the
// mission's numbers: 5 attempts, waits of 1 s doubling to at most 30 s with a
// random factor in [0.8, 1.2], a breaker that opens after 5 consecutive
// failed calls, first for 1 s, then for 1.2 times as long after each failed
// probe up to 60 s, and a budget that lets retries add at most 20% load.
// Throttling (a 429, a 503 with Retry-After) slows the retries down and never
// opens a breaker.
//
// A breaker counts calls, not attempts: the retries of one call add nothing
// to its count (Breaker.AllowRetry), so one call to one broken URL never
// opens it; a service that fails every request opens it within
// FailureThreshold calls (see BreakerConfig).
//
// # Conventions
//
// Every package of this module follows the same rules:
//
//   - Zero is the default: every config field's zero value is its
//     documented default, and a zero Breaker or Budget is ready to use.
//   - A negative value means "none" (no timeout, no wait, no floor) only
//     where the field's doc says so, such as Backoff.Initial and
//     BudgetConfig.MinPerSecond; any other negative value is a
//     *ConfigError. A negative never silently means the default.
//   - Constructors return (T, error), the error a *ConfigError naming the
//     field; a bad config is never a panic mid-call. MustBreaker panics by
//     name, for package-level literals.
//   - Time comes from one source, a field named Clock of type Clock (nil
//     means the system clock), so tests replace it with reboundtest.Clock
//     and never sleep.
//   - Config structs are named Config (BreakerConfig, BudgetConfig here),
//     constructors NewX.
//
// Pacer paces the requests to one host (PacerSet: one per host): a limit on
// requests in flight that grows while they succeed and shrinks on
// throttling, timeouts and rising latency, a host-wide pause for a
// Retry-After, announced limits, an adaptive rate once throttled, a
// bulkhead (BulkheadError), and a user-set rate through RateLimiter, which
// golang.org/x/time/rate's *rate.Limiter satisfies.
//
// The package uses the standard library only.
package rebound

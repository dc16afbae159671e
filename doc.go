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
// failures for 60 s, and a budget that lets retries add at most 20% load.
//
// Time comes from a Clock, so tests replace it with reboundtest.Clock and
// never sleep. The package uses the standard library only.
package rebound

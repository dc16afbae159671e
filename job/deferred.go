package job

import "strings"

// Why a Failed item waits. The store keeps a Failed item's reason as text
// (checkpoint.Item.Err); the runner starts the reasons of items put off for
// their host with these, so that a status display can count them by group
// (DeferGroup) without parsing the rest.
const (
	// ReasonBreakerOpen starts the reason of an item that its host's open
	// (or half-open, probing) circuit breaker refused: "deferred: circuit
	// breaker open for https://api.example.com". The same text for every
	// item of the host, so they count as one.
	ReasonBreakerOpen = "deferred: circuit breaker open"
	// ReasonThrottled starts the reason of an item whose host asked
	// callers to wait (a 429 or a 503 with Retry-After longer than the
	// worker waits itself), followed by the server's answer.
	ReasonThrottled = "deferred: throttled"
)

// Defer groups, as DeferGroup returns them.
const (
	// GroupBreakerOpen: the item's host's circuit breaker refused it.
	GroupBreakerOpen = "breaker open"
	// GroupThrottled: the item's host asked callers to wait.
	GroupThrottled = "throttled"
)

// DeferGroup says why an item that the store keeps as Failed waits, from its
// last error and kind as stored (checkpoint.Item's Err and ErrKind, or a
// checkpoint.ErrorCount's): GroupBreakerOpen when its host's circuit breaker
// refused it, GroupThrottled when its host asked callers to wait, "" for any
// other reason (a backoff after a failure, the retry budget, an interrupted
// run). A Failed item is never dead: it will be tried again. Reasons written
// by earlier versions ("circuit breaker … open", "not sent: waiting out a
// throttle …") are recognised too.
func DeferGroup(kind, err string) string {
	switch {
	case strings.HasPrefix(err, ReasonBreakerOpen), strings.HasPrefix(err, "circuit breaker "):
		return GroupBreakerOpen
	case strings.HasPrefix(err, ReasonThrottled), strings.HasPrefix(err, "not sent: waiting out a throttle"):
		return GroupThrottled
	}
	return ""
}

// breakerReason is the reason kept for an item its host's breaker refused.
func breakerReason(key string) string {
	if key == "" {
		return ReasonBreakerOpen
	}
	return ReasonBreakerOpen + " for " + key
}

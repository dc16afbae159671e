package transfer

import "time"

// EventKind says what an Event reports.
type EventKind uint8

// The events a transfer reports, in the order they usually come.
const (
	EventStart    EventKind = iota + 1 // a fresh transfer begins (Done is 0)
	EventResume                        // a transfer resumes at Done
	EventRestart                       // the transfer starts over from 0; Reason says why
	EventProgress                      // Done of Total bytes are safe
	EventRetry                         // an attempt failed (Err) and the next comes after Wait
	EventDone                          // the transfer completed
)

// String returns the kind's name as used in JSON output ("progress", ...).
func (k EventKind) String() string {
	switch k {
	case EventStart:
		return "start"
	case EventResume:
		return "resume"
	case EventRestart:
		return "restart"
	case EventProgress:
		return "progress"
	case EventRetry:
		return "retry"
	case EventDone:
		return "done"
	}
	return "unknown"
}

// Event reports the progress of a transfer to an OnEvent hook. Hooks are
// called from the transfer's own goroutine and should return quickly.
type Event struct {
	Kind    EventKind     // what happened; it says which other fields are set
	Name    string        // the local file
	Done    int64         // bytes safe so far (written locally, or acknowledged by the server)
	Total   int64         // total size; -1 when unknown
	Reason  string        // for EventRestart and EventResume
	Attempt int           // for EventRetry: the attempt that failed, from 1
	Wait    time.Duration // for EventRetry: the pause before the next attempt; 0 after progress
	Err     error         // for EventRetry: the attempt's error
}

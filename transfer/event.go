package transfer

import "time"

// EventType says what an Event reports, by the name the command line's
// --json events use.
type EventType string

// The events a transfer reports, in the order they usually come.
const (
	EventStart    EventType = "start"    // a fresh transfer begins (Done is 0)
	EventResume   EventType = "resume"   // a transfer resumes at Done
	EventRestart  EventType = "restart"  // the transfer starts over from 0; Reason says why
	EventProgress EventType = "progress" // Done of Total bytes are safe
	EventRetry    EventType = "retry"    // an attempt failed (Err) and the next comes after Wait
	EventDone     EventType = "done"     // the transfer completed
)

// Event reports the progress of a transfer to an OnEvent hook. Hooks are
// called from the transfer's own goroutine and should return quickly. Its
// shared fields (Type, Attempt, Wait, Err) have the names and types of
// job.Event's.
type Event struct {
	Type    EventType     // what happened; it says which other fields are set
	Name    string        // the local file
	Done    int64         // bytes safe so far (written locally, or acknowledged by the server)
	Total   int64         // total size; -1 when unknown
	Reason  string        // for EventRestart and EventResume
	Attempt int           // for EventRetry: the attempt that failed, from 1
	Wait    time.Duration // for EventRetry: the pause before the next attempt; 0 after progress
	Err     error         // for EventRetry: the attempt's error
}

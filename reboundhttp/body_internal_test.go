package reboundhttp

import (
	"errors"
	"io"
	"testing"
	"time"
)

// A Read that returned leaves no armed timer: a late or direct firing does
// not cut a body whose caller is merely slow to read the rest.
func TestStallTimerDisarmedBetweenReads(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	b := &stallBody{rc: pr, d: time.Hour}
	go pw.Write([]byte("abc"))
	var buf [3]byte
	if _, err := io.ReadFull(b, buf[:]); err != nil {
		t.Fatal(err)
	}
	st := b.st.Load()
	if st == nil {
		t.Fatal("no timer taken by the first Read")
	}
	st.mu.Lock()
	armed := !st.due.IsZero()
	st.mu.Unlock()
	if armed {
		t.Fatal("timer still armed after Read returned")
	}
	st.fire() // as if the timer fired late
	if b.stalled.Load() {
		t.Fatal("a late firing cut a body between Reads")
	}
	go pw.Write([]byte("d"))
	if _, err := b.Read(buf[:1]); err != nil || buf[0] != 'd' {
		t.Fatalf("read after late firing: %v %q", err, buf[:1])
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.st.Load() != nil {
		t.Fatal("Close kept the timer")
	}
	st.mu.Lock()
	owner := st.owner
	st.mu.Unlock()
	if owner != nil {
		t.Fatal("released timer still names its body")
	}
}

// A timer that fires for a body it no longer serves, or before the armed
// Read's due time, does nothing.
func TestStallTimerStaleFiring(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	b := &stallBody{rc: pr, d: time.Hour}
	st := getStallTimer(b)
	st.mu.Lock()
	st.due = time.Now().Add(time.Hour) // armed for a Read that is not late yet
	st.mu.Unlock()
	st.fire()
	if b.stalled.Load() {
		t.Fatal("fired before due")
	}
	st.mu.Lock()
	st.due = time.Now().Add(-time.Millisecond) // overdue: a real stall
	st.mu.Unlock()
	st.fire()
	if !b.stalled.Load() {
		t.Fatal("overdue Read not cut")
	}
	st.release(b)
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrStalled) {
		t.Fatalf("read after stall: %v", err)
	}
}

// The body ending gives the timer back, and later Reads take none.
func TestStallTimerReleasedAtEOF(t *testing.T) {
	pr, pw := io.Pipe()
	b := &stallBody{rc: pr, d: time.Hour}
	go func() { pw.Write([]byte("x")); pw.Close() }()
	if got, err := io.ReadAll(b); err != nil || string(got) != "x" {
		t.Fatalf("%q %v", got, err)
	}
	if b.st.Load() != nil || !b.released.Load() {
		t.Fatal("timer not released at EOF")
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF && err != io.ErrClosedPipe {
		t.Fatalf("read after EOF: %v", err)
	}
	if b.st.Load() != nil {
		t.Fatal("a Read after EOF took a timer")
	}
}

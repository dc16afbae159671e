package reboundtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/rebound-go/rebound/reboundtest"
)

func TestClockTimersFireInOrder(t *testing.T) {
	c := reboundtest.NewClock(time.Time{})
	if !c.Now().Equal(reboundtest.Epoch) {
		t.Fatalf("zero start reads %v, want Epoch", c.Now())
	}
	var order []string
	var at []time.Duration
	c.AfterFunc(3*time.Second, func() { order = append(order, "3s"); at = append(at, c.Now().Sub(reboundtest.Epoch)) })
	c.AfterFunc(time.Second, func() { order = append(order, "1s"); at = append(at, c.Now().Sub(reboundtest.Epoch)) })
	t2 := c.NewTimer(2 * time.Second)
	if c.Pending() != 3 {
		t.Fatalf("Pending %d, want 3", c.Pending())
	}
	c.Advance(1500 * time.Millisecond)
	if len(order) != 1 || order[0] != "1s" || at[0] != time.Second {
		t.Fatalf("after 1.5s: %v at %v", order, at)
	}
	select {
	case <-t2.C():
		t.Fatal("2s timer fired at 1.5s")
	default:
	}
	c.Advance(10 * time.Second)
	if len(order) != 2 || order[1] != "3s" || at[1] != 3*time.Second {
		t.Fatalf("after 11.5s: %v at %v (AfterFunc must see the clock at its own time)", order, at)
	}
	select {
	case got := <-t2.C():
		if got.Sub(reboundtest.Epoch) != 2*time.Second {
			t.Errorf("timer sent %v, want Epoch+2s", got)
		}
	default:
		t.Fatal("2s timer did not fire")
	}
	if c.Now().Sub(reboundtest.Epoch) != 11500*time.Millisecond || c.Pending() != 0 {
		t.Errorf("now %v pending %d", c.Now(), c.Pending())
	}
}

func TestClockStopAndImmediate(t *testing.T) {
	c := reboundtest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	fired := false
	tm := c.AfterFunc(time.Second, func() { fired = true })
	if !tm.Stop() || tm.Stop() {
		t.Fatal("Stop should report true once, then false")
	}
	c.Advance(time.Hour)
	if fired {
		t.Fatal("a stopped timer fired")
	}
	now := c.NewTimer(0)
	select {
	case <-now.C():
	default:
		t.Fatal("a zero-duration timer did not fire at once")
	}
	ran := false
	c.AfterFunc(-time.Second, func() { ran = true })
	if !ran || c.Pending() != 0 {
		t.Fatal("a negative AfterFunc did not run at once")
	}
}

func TestClockBlockUntil(t *testing.T) {
	c := reboundtest.NewClock(time.Time{})
	done := make(chan error, 1)
	go func() { done <- c.BlockUntil(context.Background(), 2) }()
	c.NewTimer(time.Second)
	c.NewTimer(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.BlockUntil(ctx, 5); err != context.Canceled {
		t.Fatalf("BlockUntil with a cancelled context: %v", err)
	}
}

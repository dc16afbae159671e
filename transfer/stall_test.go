package transfer

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound/reboundhttp"
	"github.com/rebound-go/rebound/reboundtest"
)

// StallTimeout follows the rule of every timeout: 0 is the default, a
// negative value means never, as reboundhttp.Config.StallTimeout.
func TestStallTimeoutNegativeMeansNever(t *testing.T) {
	if got := stallTimeout(0); got != reboundhttp.DefaultStallTimeout {
		t.Fatalf("stallTimeout(0) = %v", got)
	}
	if got := stallTimeout(-1); got != 0 {
		t.Fatalf("stallTimeout(-1) = %v, want off", got)
	}
	clock := reboundtest.NewClock(reboundtest.Epoch)
	cut := false
	sr := newStallReader(strings.NewReader("x"), clock, stallTimeout(-1), func() { cut = true })
	clock.Advance(24 * time.Hour)
	if b, err := io.ReadAll(sr); err != nil || string(b) != "x" || cut {
		t.Fatalf("read %q, %v, cut %v: an off stall timeout cut the body", b, err, cut)
	}
	sr.stop()
}

// transfer's stall error is reboundhttp's: one sentinel for the module.
func TestErrStalledIsReboundhttps(t *testing.T) {
	if !errors.Is(ErrStalled, reboundhttp.ErrStalled) {
		t.Fatal("two ErrStalled")
	}
}

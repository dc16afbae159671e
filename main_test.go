package rebound_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: policies
// start timers and the socket tests start servers, and all must end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

package postgres

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a closed Store leaves no goroutine behind (the
// committer, the pool's health checks, LockJob's connection).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

package checkpoint_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

// The SQLite store the benchmarks use starts a committer goroutine per
// store; every Close must stop it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

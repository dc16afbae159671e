package sqlite_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/checkpoint/storetest"
)

// The SQLite store starts a committer goroutine per store; every Close must
// stop it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openSQLite(t *testing.T, path string, cfg checkpoint.Config) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T, path string, cfg checkpoint.Config) checkpoint.Store {
			return openSQLite(t, path, cfg)
		},
		Persistent: true,
	})
}

package checkpoint_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/storetest"
)

// The SQLite store starts a committer goroutine per store; every Close must
// stop it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T, path string, opts checkpoint.Options) checkpoint.Store {
			return checkpoint.NewMemory(opts)
		},
	})
}

func openSQLite(t *testing.T, path string, opts checkpoint.Options) checkpoint.Store {
	t.Helper()
	s, err := checkpoint.OpenSQLite(path, opts)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T, path string, opts checkpoint.Options) checkpoint.Store {
			return openSQLite(t, path, opts)
		},
		Persistent: true,
	})
}

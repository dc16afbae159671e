package sqlite_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
)

// BusyTimeout follows the negative-values rule: 0 is the default (5 s), a
// negative value means no waiting at all, never silently the default.
func TestBusyTimeoutNegativeMeansNone(t *testing.T) {
	for _, tc := range []struct {
		set  time.Duration
		want int64
	}{{0, 5000}, {-1, 0}, {2 * time.Second, 2000}} {
		s := openSQLite(t, filepath.Join(t.TempDir(), "s.db"), checkpoint.Config{BusyTimeout: tc.set})
		got, err := sqlite.BusyTimeoutMS(s)
		s.Close()
		if err != nil || got != tc.want {
			t.Errorf("BusyTimeout %v: busy_timeout = %d ms, %v; want %d", tc.set, got, err, tc.want)
		}
	}
}

// A negative QueueSize or MaxBatch has no meaning: Open refuses it with a
// *rebound.ConfigError instead of taking the default.
func TestNegativeQueueIsConfigError(t *testing.T) {
	for _, cfg := range []checkpoint.Config{{QueueSize: -1}, {MaxBatch: -1}} {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"), cfg)
		var ce *rebound.ConfigError
		if !errors.As(err, &ce) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%+v) = %v; want a *rebound.ConfigError", cfg, err)
		}
	}
}

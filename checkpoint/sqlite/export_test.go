package sqlite

import "github.com/rebound-go/rebound/checkpoint"

// Exported for tests only.
var (
	LeaseSQL      = []string{leaseSQL(checkpoint.Leased), leaseSQL(checkpoint.Failed), leaseSQL(checkpoint.Pending)}
	DeadSQL       = deadSQL
	UnfinishedSQL = unfinishedSQL
)

// Migrations is how many migrations the layout has.
var Migrations = len(migrations)

// BusyTimeoutMS reads the connection's busy_timeout, in milliseconds.
func BusyTimeoutMS(s *Store) (int64, error) {
	var ms int64
	err := s.db.QueryRow("PRAGMA busy_timeout").Scan(&ms)
	return ms, err
}

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

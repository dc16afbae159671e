package checkpoint

// Exported for tests only.
var (
	LeaseSQL      = []string{leaseSQL(Leased), leaseSQL(Failed), leaseSQL(Pending)}
	DeadSQL       = deadSQL
	UnfinishedSQL = unfinishedSQL
)

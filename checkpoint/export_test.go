package checkpoint

// Exported for tests only.
var (
	LeaseSQL = leaseSQL
	DeadSQL  = deadSQL
)

// Package job runs a batch of network work items over a checkpoint.Store, so
// that a run that crashes resumes where it stopped and does nothing twice.
//
// A job is a named set of items read from a JSONL manifest (ScanManifest) or
// any Go iterator. Each item is leased, run through a rebound.Pipeline with an
// Idempotency-Key derived from the job and the item ID (the same after a
// restart, so a server that deduplicates applies each item once), and its
// outcome is checkpointed: done, failed (will retry) or dead (a permanent
// failure, or out of attempts). Memory is bounded by the concurrency, not the
// number of items.
package job

// Package job runs a batch of network work items over a checkpoint.Store, so
// that a run that crashes resumes where it stopped and does nothing twice.
//
// A job is a named set of items loaded from a JSONL manifest (LoadManifest)
// or from any Go iterator of (ID, payload) pairs (LoadItems), with the same
// guarantees. Each item is leased, run through a rebound.Pipeline with an
// Idempotency-Key derived from the job's ID and the item ID (IdempotencyKey),
// and its outcome is checkpointed: done, failed (will retry) or dead (a
// permanent failure, or out of attempts). Memory is bounded by the
// concurrency, not the number of items.
//
// A key is scoped to one job instance: the job's ID is drawn at random when
// the store creates the job and kept with it, so the key is the same on every
// attempt, after every crash and resume, and on every worker sharing the job
// (a server that deduplicates applies each item once), but a job in another
// state file, or the same job after checkpoint.Store.Restart, sends other
// keys even for the same manifest and item IDs. The flip side: a new job
// cannot recognise work an earlier job did; running an edited manifest as a
// new job sends its finished items again.
package job

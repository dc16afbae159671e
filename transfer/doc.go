// Package transfer moves files over HTTP so that they survive the network:
// resumable downloads (Range, If-Range, ETag / Last-Modified) and resumable
// uploads (the tus 1.0 protocol).
//
// # Model
//
// Download writes to FILE.part and keeps what it needs to resume (the offset,
// the validator, the total size) in a StateStore. A later call with the same
// URL and output resumes with "Range: bytes=N-" and "If-Range", where N is the
// size of FILE.part, and accepts only an answer that provably continues the
// same bytes: a 206 whose Content-Range starts at N and names the known total.
// A 200 (the server ignored Range, or the file changed) starts over from byte
// 0 and truncates the .part first; a 416, a Content-Range that does not match,
// or a changed ETag or size never appends: the download verifies what it has
// or starts over. On completion the file is fsynced and renamed atomically.
//
// Without a total (no Content-Length, "bytes A-B/*"), the end of a body is
// not the end of the file: the download asks again from the new offset until
// the server says there is no more (416), except after a 200 whose framing
// (chunked, HTTP/2) marks its end. A 206 must carry the validator sent in
// If-Range, or the download starts over.
//
// Upload speaks tus 1.0 (core + creation; checksum and termination when the
// server advertises them). The upload URL is kept in the StateStore under a
// fingerprint of the file (path, size, modification time, first MiB), so
// running the same upload again resumes it; after any failure the client asks
// the server (HEAD) how much it has. The state also keeps a SHA-256 of the
// bytes the server confirmed, taken as it confirmed them: a resume first
// reads them again and, if the file no longer holds them (changed past its
// first MiB with its size and time kept), starts a new upload. Bytes the
// server took after the last saved confirmation (at most one chunk, when a
// run was killed mid-PATCH) cannot be checked that way. Progress is passing
// the most the server ever confirmed: a server that goes back below it more
// than three times in a row is given up on.
//
// Every request runs through a rebound.Pipeline (classification, backoff,
// breaker). An attempt that made progress resets the attempt count: a
// transfer cut ten times but advancing each time is not "failing", and the
// Pipeline's attempts bound only failures in a row. The Pipeline's per-attempt
// Timeout, if any, bounds each request; a body that stalls is cut by
// StallTimeout instead, so large transfers have no cap on total time. A
// failed status is a *reboundhttp.StatusError, a stall matches
// reboundhttp.ErrStalled (ErrStalled): the same errors as reboundhttp's.
//
// # Zero values and concurrency
//
// The zero DownloadOptions and UploadOptions are usable: reboundhttp's base
// client (DefaultClient: the mission's timeouts, connect 5 s, TLS 5 s,
// response headers 30 s, and the safe redirect policy; the retries are the
// Pipeline's), a 30 s stall timeout, the default Pipeline, and a FileStateStore in
// DefaultStateDir (the user's cache directory). Download and
// Upload are safe to call concurrently for different files. One target has
// one transfer at a time, in this process or any other: a download holds a
// file lock on FILE.part.lock beside its .part, an upload one on a lock file for
// its file and endpoint, and a second transfer of the same target fails at
// once with ErrLocked, naming the holder's pid (on systems without file
// locks, such as Plan 9, nothing is locked). The .part is opened without
// following links (O_NOFOLLOW, O_EXCL when created) and must be a regular
// file with no other name.
package transfer

package transfer

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/reboundhttp"
)

// TusVersion is the tus protocol version this client speaks.
const TusVersion = "1.0.0"

// UploadOptions configures Upload. The zero value is usable; see each field.
type UploadOptions struct {
	// Client sends the requests; nil means DefaultClient().
	Client *http.Client
	// Pipeline runs each request (OPTIONS, POST, HEAD, each PATCH); nil means
	// the zero Pipeline. Its Timeout, if set, bounds each request, so it must
	// leave time for one chunk.
	Pipeline *rebound.Pipeline
	// Store keeps the upload URL and offset; nil means a FileStateStore in
	// DefaultStateDir().
	Store StateStore
	// StartOver forgets a kept upload (terminating it on the server when the
	// server supports termination) and creates a new one. It also gets past
	// a corrupt state file.
	StartOver bool
	// ChunkSize is the most bytes sent in one PATCH; 0 means
	// DefaultChunkSize (8 MiB); negative is an error (a *rebound.ConfigError,
	// matching ErrInvalid). A failure re-sends at most one chunk.
	ChunkSize int64
	// Metadata is sent as Upload-Metadata; "filename" defaults to the file's
	// base name. Keys must be non-empty and contain no spaces or commas.
	Metadata map[string]string
	// Header holds extra request headers (e.g. Authorization; never logged
	// nor stored). They go to the endpoint's origin only: when the server's
	// Location puts the upload on another origin (scheme, host and port),
	// its requests carry none of them, unless CrossOriginHeader is set.
	Header http.Header
	// CrossOriginHeader sends Header also to an upload URL on another
	// origin than the endpoint, which the server chose; set it only when
	// that origin is as trusted as the endpoint (a storage host of the same
	// service that needs the same credentials).
	CrossOriginHeader bool
	// StallTimeout cuts a PATCH whose body the connection stops taking for
	// this long; 0 means DefaultStallTimeout, negative means never (as
	// reboundhttp.Config.StallTimeout).
	StallTimeout time.Duration
	// OnEvent, if set, receives progress events.
	OnEvent func(Event)
	// Clock times stalls; nil means the system clock.
	Clock rebound.Clock
	// LockDir holds the lock file that keeps one upload of a file to an
	// endpoint at a time (a second fails with ErrLocked); "" means the
	// directory of Store when it is a *FileStateStore, else
	// DefaultStateDir().
	LockDir string
}

// UploadResult describes a completed upload.
type UploadResult struct {
	URL     string // the tus upload resource
	Size    int64  // the file's size in bytes, all of it now on the server
	Resumed bool   // the run continued an upload kept from an earlier run
	Created int    // uploads created by this run (more than 1 if the server forgot one)
}

// errUploadGone marks a kept upload URL that the server no longer knows.
var errUploadGone = errors.New("transfer: the server no longer knows the upload")

// maxCreates bounds how often one run creates a new upload after the server
// forgot the previous one.
const maxCreates = 3

// Fingerprint identifies a file for resuming its upload: its absolute path,
// size, modification time and the SHA-256 of its first MiB. A file that was
// replaced, or changed in a way these show, gets a new fingerprint, so its
// upload starts over; a change they miss (past the first MiB, size and time
// kept) is caught before resuming by the check of the bytes the server
// confirmed (ResumeState.SentSHA256).
func Fingerprint(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer f.Close()
	return fingerprint(f, path)
}

func fingerprint(f *os.File, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<20)); err != nil {
		return "", fmt.Errorf("transfer: %w", err) // a *PathError: it names the file
	}
	return fmt.Sprintf("%s|%d|%d|%s", abs, fi.Size(), fi.ModTime().UnixNano(), hex.EncodeToString(h.Sum(nil))), nil
}

// Upload sends the file at path to the tus endpoint (the creation URL, e.g.
// https://host/files/), resuming an upload kept from an earlier run of the
// same file to the same endpoint. It returns when the server holds every
// byte, or with the error that ended it: ctx's error when ctx ended (the
// state is kept), an error matching ErrInvalid for bad input, a
// *CorruptStateError, or the Pipeline's *rebound.RetryError.
func Upload(ctx context.Context, path, endpoint string, opts UploadOptions) (*UploadResult, error) {
	eu, err := url.Parse(endpoint)
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", ErrInvalid, redact.URLString(endpoint))
	}
	if opts.ChunkSize < 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, &rebound.ConfigError{Field: "transfer.UploadOptions.ChunkSize", Reason: "negative"})
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, path)
	}
	meta, err := encodeMetadata(opts.Metadata, filepath.Base(path))
	if err != nil {
		return nil, err
	}
	fp, err := fingerprint(f, path)
	if err != nil {
		return nil, err
	}
	u := &uploader{opts: opts, f: f, name: path, size: fi.Size(), endpoint: eu, meta: meta,
		fp: fp, key: "upload " + redact.Identity(eu) + " " + fp, clock: clockOr(opts.Clock)}
	// One upload per file and endpoint, before anything is sent or the
	// state touched: two would PATCH one upload over each other.
	lockDir := opts.LockDir
	if fss, ok := opts.Store.(*FileStateStore); ok && lockDir == "" {
		lockDir = fss.dir
	}
	if lockDir == "" {
		if lockDir, err = DefaultStateDir(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer: lock directory: %w", err)
	}
	sum := sha256.Sum256([]byte(u.key))
	lock, err := lockTarget(filepath.Join(lockDir, "upload-"+hex.EncodeToString(sum[:12])+".lock"), "upload of "+path+" to "+reboundhttp.RedactURL(eu))
	if err != nil {
		return nil, err
	}
	if lock != nil {
		defer lock.UnlockAndRemove()
	}
	if u.client = opts.Client; u.client == nil {
		u.client = defaultClient()
	}
	if u.store = opts.Store; u.store == nil {
		if u.store, err = defaultStore(); err != nil {
			return nil, err
		}
	}
	if u.chunk = opts.ChunkSize; u.chunk == 0 {
		u.chunk = DefaultChunkSize
	}
	u.stall = stallTimeout(opts.StallTimeout)
	return u.run(ctx)
}

type uploader struct {
	opts     UploadOptions
	client   *http.Client
	store    StateStore
	clock    rebound.Clock
	f        *os.File
	name     string
	size     int64
	endpoint *url.URL
	meta     string
	fp, key  string
	chunk    int64
	stall    time.Duration

	// From the server's OPTIONS.
	extensions []string
	checksum   string // the Upload-Checksum algorithm to use; "" for none

	uploadURL string
	offset    int64 // bytes the server holds
	needSync  bool  // ask the server (HEAD) before the next PATCH
	result    UploadResult

	// sent hashes the file's first hashed bytes; the state keeps its sum at
	// the confirmed offset, so a resume can check that the bytes the server
	// holds are still the file's.
	sent   hash.Hash
	hashed int64
	// high is the most bytes the server ever confirmed in this run; losses
	// counts answers, in a row, that went back below it without passing it
	// again (a server that keeps losing progress must run out of them).
	high   int64
	losses int
}

// maxLosses bounds how often in a row the server may lose confirmed bytes,
// as maxRestarts bounds a download's restarts.
const maxLosses = maxRestarts

func (u *uploader) emit(ev Event) {
	if u.opts.OnEvent == nil {
		return
	}
	if ev.Type == EventRetry {
		ev.Done = u.offset // the Pipeline's retry events know no offset
	}
	ev.Name = u.name
	if ev.Total == 0 {
		ev.Total = u.size
	}
	u.opts.OnEvent(ev)
}

func (u *uploader) run(ctx context.Context) (*UploadResult, error) {
	p := pipelineFor(u.opts.Pipeline, "upload", u.emit)
	if err := p.Do(ctx, u.discover); err != nil {
		return nil, u.fail(ctx, err)
	}
	st, ok, err := u.store.Load(ctx, u.key)
	var corrupt *CorruptStateError
	switch {
	case errors.As(err, &corrupt) && u.opts.StartOver:
		ok = false
	case err != nil:
		return nil, err
	}
	if u.opts.StartOver {
		if ok && st.UploadURL != "" && slices.Contains(u.extensions, "termination") {
			// Best effort: the server frees the old upload's space.
			_ = p.Do(ctx, func(ctx context.Context) error { return u.terminate(ctx, st.UploadURL) })
		}
		ok = false
		if err := u.store.Delete(ctx, u.key); err != nil {
			return nil, err
		}
	}
	u.sent = sha256.New()
	if ok && st.Fingerprint == u.fp && st.UploadURL != "" {
		// The fingerprint reads only the first MiB: a file changed past it
		// with its size and time kept (cp -p, rsync -t) would resume an
		// upload of other bytes. Check all the bytes the server confirmed.
		same, err := u.sentUnchanged(st)
		if err != nil {
			return nil, err
		}
		if !same {
			u.emit(Event{Type: EventRestart, Reason: fmt.Sprintf("the file's first %d bytes are not those uploaded to %s; starting a new upload", st.Offset, redact.URLString(st.UploadURL))})
			if slices.Contains(u.extensions, "termination") {
				_ = p.Do(ctx, func(ctx context.Context) error { return u.terminate(ctx, st.UploadURL) })
			}
			if err := u.store.Delete(ctx, u.key); err != nil {
				return nil, err
			}
			ok = false
		}
	}
	if ok && st.Fingerprint == u.fp && st.UploadURL != "" {
		u.uploadURL, u.offset, u.needSync = st.UploadURL, st.Offset, true
		u.high = st.Offset
		u.result.Resumed = true
		u.emit(Event{Type: EventResume, Done: st.Offset, Reason: "kept upload " + redact.URLString(st.UploadURL)})
	} else {
		u.sent.Reset()
		u.hashed = 0
		u.emit(Event{Type: EventStart})
	}
	for {
		if u.uploadURL == "" {
			if u.result.Created >= maxCreates {
				return nil, fmt.Errorf("transfer: upload %s: the server forgot %d new uploads in a row; giving up", u.name, u.result.Created)
			}
			if err := p.Do(ctx, u.create); err != nil {
				return nil, u.fail(ctx, err)
			}
		}
		err := p.Do(ctx, u.step)
		if errors.Is(err, errUploadGone) {
			u.emit(Event{Type: EventRestart, Reason: "the server no longer knows upload " + redact.URLString(u.uploadURL)})
			u.uploadURL, u.offset, u.high, u.losses = "", 0, 0, 0
			continue
		}
		if err != nil {
			return nil, u.fail(ctx, err)
		}
		if u.offset == u.size && !u.needSync {
			break
		}
	}
	if err := u.store.Delete(ctx, u.key); err != nil {
		return nil, err
	}
	u.result.URL, u.result.Size = u.uploadURL, u.size
	u.emit(Event{Type: EventDone, Done: u.size})
	return &u.result, nil
}

func (u *uploader) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// newRequest builds a tus request with the caller's headers and Tus-Resumable.
func (u *uploader) newRequest(ctx context.Context, method, target string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, rebound.Permanent(redact.URLError(err))
	}
	if u.opts.CrossOriginHeader || reboundhttp.SameOrigin(u.endpoint, req.URL) {
		for k, v := range u.opts.Header {
			req.Header[k] = v
		}
	}
	req.Header.Set("Tus-Resumable", TusVersion)
	return req, nil
}

func (u *uploader) do(req *http.Request) (*http.Response, error) {
	if err := reboundhttp.ValidateRequest(req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err) // permanent: net/http would refuse it, every time
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, redact.URLError(err) // its message quotes the URL, query and all
	}
	// tus answers carry no body worth reading; drain a little so the
	// connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp, nil
}

// discover asks the server (OPTIONS) what it supports. A server that does not
// answer OPTIONS is assumed to speak core + creation only.
func (u *uploader) discover(ctx context.Context) error {
	req, err := u.newRequest(ctx, http.MethodOptions, u.endpoint.String(), nil)
	if err != nil {
		return err
	}
	resp, err := u.do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		serr := statusError(resp, true)
		if serr.Class().Kind.Retryable() {
			return serr
		}
		return nil
	}
	if v := resp.Header.Get("Tus-Version"); v != "" {
		versions, err := parseTusList(v)
		if err != nil {
			return rebound.Permanent(err)
		}
		if !slices.Contains(versions, TusVersion) {
			return rebound.Permanent(fmt.Errorf("transfer: the server speaks tus %s, not %s", v, TusVersion))
		}
	}
	if u.extensions, err = parseTusList(resp.Header.Get("Tus-Extension")); err != nil {
		return rebound.Permanent(err)
	}
	if v := resp.Header.Get("Tus-Max-Size"); v != "" {
		max, err := parseTusNumber("Tus-Max-Size", v)
		if err != nil {
			return rebound.Permanent(err)
		}
		if u.size > max {
			return rebound.Permanent(fmt.Errorf("%w: %s is %d bytes; the server takes at most %d", ErrInvalid, u.name, u.size, max))
		}
	}
	if slices.Contains(u.extensions, "checksum") {
		algs, err := parseTusList(resp.Header.Get("Tus-Checksum-Algorithm"))
		if err != nil {
			return rebound.Permanent(err)
		}
		for _, pref := range []string{"sha256", "sha1", "md5"} {
			if slices.ContainsFunc(algs, func(a string) bool { return strings.EqualFold(a, pref) }) {
				u.checksum = pref
				break
			}
		}
	}
	return nil
}

// create makes a new upload (POST) and keeps its URL.
func (u *uploader) create(ctx context.Context) error {
	req, err := u.newRequest(ctx, http.MethodPost, u.endpoint.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Upload-Length", strconv.FormatInt(u.size, 10))
	if u.meta != "" {
		req.Header.Set("Upload-Metadata", u.meta)
	}
	resp, err := u.do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		if resp.StatusCode >= 400 {
			return statusError(resp, false)
		}
		return rebound.Permanent(fmt.Errorf("transfer: tus POST: unexpected answer %s", redact.Printable(resp.Status)))
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return rebound.Permanent(fmt.Errorf("transfer: tus POST: no usable Location in the answer"))
	}
	if loc.Scheme != "https" && (u.endpoint.Scheme == "https" || loc.Scheme != "http") {
		// The file would travel in clear to where the server pointed.
		return rebound.Permanent(fmt.Errorf("transfer: tus POST: the https endpoint put the upload at %s; not sending the file there", reboundhttp.RedactURL(loc)))
	}
	u.uploadURL, u.offset, u.needSync = loc.String(), 0, false
	u.result.Created++
	return u.save(ctx)
}

// save records the confirmed offset with the hash of the bytes below it.
func (u *uploader) save(ctx context.Context) error {
	if err := u.hashTo(u.offset); err != nil {
		return rebound.Permanent(err)
	}
	err := u.store.Save(ctx, u.key, ResumeState{URL: redact.URL(u.endpoint), Offset: u.offset, Size: u.size,
		UploadURL: u.uploadURL, Fingerprint: u.fp, SentSHA256: hex.EncodeToString(u.sent.Sum(nil))})
	return rebound.Permanent(err)
}

// hashTo brings u.sent to the file's first n bytes: it reads only what is
// new, and starts again from 0 when the server went back.
func (u *uploader) hashTo(n int64) error {
	if n < u.hashed {
		u.sent.Reset()
		u.hashed = 0
	}
	if n == u.hashed {
		return nil
	}
	if _, err := io.Copy(u.sent, io.NewSectionReader(u.f, u.hashed, n-u.hashed)); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	u.hashed = n
	return nil
}

// sentUnchanged reports whether the file's first st.Offset bytes hash to
// st.SentSHA256 (a state without one, from an older version, cannot be
// checked and counts as changed). It leaves u.sent at st.Offset.
func (u *uploader) sentUnchanged(st ResumeState) (bool, error) {
	u.sent.Reset()
	u.hashed = 0
	if err := u.hashTo(st.Offset); err != nil {
		return false, err
	}
	return st.SentSHA256 != "" && hex.EncodeToString(u.sent.Sum(nil)) == st.SentSHA256, nil
}

// confirmed records an offset the server stated. Progress is passing the
// most it ever confirmed; going back below that maxLosses times in a row,
// without passing it again in between, ends the upload.
func (u *uploader) confirmed(off int64) error {
	switch {
	case off > u.high:
		u.high, u.losses = off, 0
	case off < u.high && off < u.offset:
		if u.losses++; u.losses > maxLosses {
			return rebound.Permanent(fmt.Errorf("transfer: upload %s: the server lost confirmed bytes %d times in a row (back to %d of %d); giving up",
				u.name, u.losses, off, u.high))
		}
	}
	u.offset = off
	return nil
}

// sync asks the server how much of the upload it holds (HEAD).
func (u *uploader) sync(ctx context.Context) error {
	req, err := u.newRequest(ctx, http.MethodHead, u.uploadURL, nil)
	if err != nil {
		return err
	}
	resp, err := u.do(req)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone || resp.StatusCode == http.StatusForbidden:
		return rebound.Permanent(errUploadGone)
	case resp.StatusCode >= 400:
		return statusError(resp, true)
	case resp.StatusCode >= 300:
		return rebound.Permanent(fmt.Errorf("transfer: tus HEAD: unexpected answer %s", redact.Printable(resp.Status)))
	}
	off, err := parseTusNumber("Upload-Offset", resp.Header.Get("Upload-Offset"))
	if err != nil {
		return rebound.Permanent(err)
	}
	if v := resp.Header.Get("Upload-Length"); v != "" {
		n, err := parseTusNumber("Upload-Length", v)
		if err != nil {
			return rebound.Permanent(err)
		}
		if n != u.size {
			return rebound.Permanent(errUploadGone) // not our upload any more
		}
	}
	if off > u.size {
		return rebound.Permanent(fmt.Errorf("transfer: tus HEAD: the server claims %d bytes of a %d-byte file", off, u.size))
	}
	if err := u.confirmed(off); err != nil {
		return err
	}
	u.needSync = false
	u.emit(Event{Type: EventProgress, Done: off})
	return u.save(ctx)
}

// step brings the offset up to date if needed, then sends one chunk.
func (u *uploader) step(ctx context.Context) error {
	if u.needSync {
		if err := u.sync(ctx); err != nil {
			return err
		}
	}
	if u.offset == u.size {
		return nil // nothing left (an empty file is complete once created)
	}
	n := min(u.chunk, u.size-u.offset)
	req, err := u.newRequest(ctx, http.MethodPatch, u.uploadURL, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req = req.WithContext(ctx)
	section := io.NewSectionReader(u.f, u.offset, n)
	if u.checksum != "" {
		sum, err := chunkSum(u.checksum, section)
		if err != nil {
			return rebound.Permanent(err)
		}
		req.Header.Set("Upload-Checksum", u.checksum+" "+sum)
	}
	sr := newStallReader(io.NewSectionReader(u.f, u.offset, n), u.clock, u.stall, cancel)
	defer sr.stop()
	req.Body = io.NopCloser(sr)
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(u.offset, 10))
	resp, err := u.do(req)
	if err != nil {
		u.needSync = true
		if sr.stalled.Load() {
			return rebound.Transient(fmt.Errorf("transfer: tus PATCH: %w: the connection took nothing for %v", ErrStalled, u.stall))
		}
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return rebound.Permanent(errUploadGone)
	case resp.StatusCode == http.StatusConflict, // offset mismatch: ask the server
		resp.StatusCode == 423, // locked by a request that is dying: ask again
		resp.StatusCode == 460: // checksum mismatch: the chunk was mangled on the way
		u.needSync = true
		return rebound.Transient(statusError(resp, true))
	case resp.StatusCode >= 400:
		u.needSync = true
		return statusError(resp, true)
	case resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK:
		u.needSync = true
		return rebound.Permanent(fmt.Errorf("transfer: tus PATCH: unexpected answer %s", redact.Printable(resp.Status)))
	}
	off, err := parseTusNumber("Upload-Offset", resp.Header.Get("Upload-Offset"))
	if err != nil {
		u.needSync = true
		return rebound.Permanent(err)
	}
	if off < u.offset || off > u.offset+n {
		u.needSync = true
		return rebound.Transient(fmt.Errorf("transfer: tus PATCH: the server reports offset %d after %d bytes at %d", off, n, u.offset))
	}
	if err := u.confirmed(off); err != nil {
		return err
	}
	u.emit(Event{Type: EventProgress, Done: off})
	return u.save(ctx)
}

// terminate deletes an upload (the termination extension).
func (u *uploader) terminate(ctx context.Context, target string) error {
	req, err := u.newRequest(ctx, http.MethodDelete, target, nil)
	if err != nil {
		return err
	}
	resp, err := u.do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusGone {
		return statusError(resp, true)
	}
	return nil
}

func chunkSum(alg string, r io.Reader) (string, error) {
	var h hash.Hash
	switch alg {
	case "sha256":
		h = sha256.New()
	case "sha1":
		h = sha1.New()
	case "md5":
		h = md5.New()
	default:
		return "", fmt.Errorf("transfer: unknown checksum %q", alg)
	}
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// encodeMetadata builds an Upload-Metadata value: "key base64(value)" pairs,
// comma-separated, keys sorted; "filename" defaults to name.
func encodeMetadata(meta map[string]string, name string) (string, error) {
	keys := make([]string, 0, len(meta)+1)
	for k := range meta {
		if k == "" || strings.ContainsAny(k, " ,") || !isASCIIPrintable(k) {
			return "", fmt.Errorf("%w: metadata key %q", ErrInvalid, k)
		}
		keys = append(keys, k)
	}
	if _, ok := meta["filename"]; !ok {
		keys = append(keys, "filename")
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		v, ok := meta[k]
		if !ok {
			v = name
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		if v != "" {
			b.WriteByte(' ')
			b.WriteString(base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	return b.String(), nil
}

func isASCIIPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

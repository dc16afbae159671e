package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/filelock"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/reboundhttp"
)

// DownloadOptions configures Download. The zero value is usable; see each field.
type DownloadOptions struct {
	// Path is the output file; an existing file there is replaced once the
	// download is complete. Empty: a name from the server's
	// Content-Disposition, else from the URL (sanitised by SafeFileName, else
	// "download"), inside Dir; if a file of that name exists, Download fails
	// (ErrInvalid) before it writes anything.
	Path string
	// Dir is the output directory when Path is empty; "" means ".".
	Dir string
	// Client sends the requests; nil means DefaultClient().
	Client *http.Client
	// Pipeline runs each request; nil means the zero Pipeline (5 attempts,
	// jittered backoff from 1 s). Its Timeout, if set, bounds each request
	// including its body; leave it 0 for large files and rely on StallTimeout.
	Pipeline *rebound.Pipeline
	// Store keeps the resume state; nil means a FileStateStore in
	// DefaultStateDir().
	Store StateStore
	// StartOver discards any .part and state (also a corrupt state file) and
	// downloads from byte 0.
	StartOver bool
	// SHA256, if set, is the expected SHA-256 of the whole file in hex; the
	// completed file is read once to check it.
	SHA256 string
	// StallTimeout cuts a body that sends nothing for this long (the attempt
	// then resumes); 0 means DefaultStallTimeout, negative means never. It
	// is reboundhttp.Config.StallTimeout's setting, with the same meaning.
	StallTimeout time.Duration
	// Header holds extra request headers (e.g. Authorization; never logged
	// nor stored).
	Header http.Header
	// OnEvent, if set, receives progress events.
	OnEvent func(Event)
	// ProgressInterval is the least time between EventProgress events; 0
	// means DefaultProgressInterval, negative means none (an event for
	// every read that brings bytes).
	ProgressInterval time.Duration
	// Clock times stalls and progress; nil means the system clock.
	Clock rebound.Clock
}

// DownloadResult describes a completed download.
type DownloadResult struct {
	Path     string // the completed file
	Size     int64  // its size in bytes
	Resumed  bool   // the run continued an earlier .part
	Restarts int    // times the download started over from byte 0
	Verified string // the checks that passed: "sha256", "repr-digest", "content-md5", comma-separated
}

// ChecksumError reports a completed download whose content does not match
// the expected digest. The .part and the state are removed, so the next run
// starts over.
type ChecksumError struct {
	Path       string // the file the download was meant to produce
	Algorithm  string // the digest that failed: "sha256", "sha-256", "sha-512" or "md5"
	Want, Have string // the expected and the computed digest, in hex
}

// Error names the file, the algorithm and both digests.
func (e *ChecksumError) Error() string {
	return fmt.Sprintf("transfer: %s: %s mismatch: want %s, have %s", e.Path, e.Algorithm, e.Want, e.Have)
}

// Class implements rebound.Classed: a mismatch is permanent.
func (e *ChecksumError) Class() rebound.Class {
	return rebound.Class{Kind: rebound.KindPermanent, Reason: "checksum mismatch"}
}

// maxRestarts bounds restarts in a row that made no progress, so a server
// that always lies cannot keep a download looping.
const maxRestarts = 3

// Download fetches rawURL to a local file, resuming an earlier attempt when
// its state and .part file are there (see the package doc for the model).
// It returns when the file is complete and renamed into place, or with the
// error that ended it: ctx's error when ctx ended (the .part and the state
// are kept), an error matching ErrInvalid for bad input, a *ChecksumError,
// a *CorruptStateError, or the Pipeline's *rebound.RetryError.
func Download(ctx context.Context, rawURL string, opts DownloadOptions) (*DownloadResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", ErrInvalid, redact.URLString(rawURL))
	}
	var want []byte
	if opts.SHA256 != "" {
		want, err = hex.DecodeString(opts.SHA256)
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("%w: DownloadOptions.SHA256 must be 64 hex digits", ErrInvalid)
		}
	}
	// The URL's password, if any, stays out of the state, its file name and
	// every message.
	d := &downloader{url: rawURL, shown: reboundhttp.RedactURL(u), u: u, opts: opts, wantSHA: want, clock: clockOr(opts.Clock)}
	if d.client = opts.Client; d.client == nil {
		d.client = defaultClient()
	}
	if d.store = opts.Store; d.store == nil {
		if d.store, err = defaultStore(); err != nil {
			return nil, err
		}
	}
	d.stall = stallTimeout(opts.StallTimeout)
	switch d.every = opts.ProgressInterval; {
	case d.every == 0:
		d.every = DefaultProgressInterval
	case d.every < 0:
		d.every = 0 // now.Sub(lastEmit) >= 0 always holds
	}
	// The state key tells URLs that differ only in their query apart (they
	// may be different files) but holds only a hash of it: the query may
	// carry a token or a signature, and the key is stored.
	if opts.Path != "" {
		abs, err := filepath.Abs(opts.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: output path: %v", ErrInvalid, err)
		}
		d.dir, d.name = filepath.Dir(abs), filepath.Base(abs)
		d.key = "get " + redact.Identity(u) + " -> " + abs
	} else {
		dir := opts.Dir
		if dir == "" {
			dir = "."
		}
		if d.dir, err = filepath.Abs(dir); err != nil {
			return nil, fmt.Errorf("%w: output directory: %v", ErrInvalid, err)
		}
		d.key = "get " + redact.Identity(u) + " -> " + d.dir + string(filepath.Separator)
	}
	if fi, err := os.Stat(d.dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: output directory %s does not exist", ErrInvalid, d.dir)
	}
	return d.run(ctx)
}

type downloader struct {
	url     string
	shown   string // url for messages and the state: no password, no query (it may hold a signature)
	u       *url.URL
	opts    DownloadOptions
	client  *http.Client
	store   StateStore
	clock   rebound.Clock
	stall   time.Duration
	every   time.Duration
	wantSHA []byte

	key       string
	dir, name string // name is "" until chosen
	st        ResumeState
	f         *os.File
	lock      *filelock.Lock // on the .part, held from when its name is known
	offset    int64          // bytes of the .part that belong to st's representation
	high      int64          // the most bytes ever held in this run: progress means passing it

	done      bool
	unframed  bool // the last 200 had no length and no framing: its end is unproven
	restarts  int  // in a row without progress
	result    DownloadResult
	digest    string // the last response's Repr-Digest
	md5       string // Content-MD5 of a 200 that carried the whole file
	lastEmit  time.Time
	lastSaved time.Time
}

func (d *downloader) emit(ev Event) {
	if d.opts.OnEvent == nil {
		return
	}
	if ev.Type == EventRetry {
		ev.Done = d.offset // the Pipeline's retry events know no offset
	}
	if ev.Name == "" && d.name != "" {
		ev.Name = filepath.Join(d.dir, d.name)
	}
	if ev.Total == 0 && ev.Type != EventStart {
		ev.Total = d.st.Size
	}
	d.opts.OnEvent(ev)
}

func (d *downloader) partPath() string { return filepath.Join(d.dir, d.name+".part") }

func (d *downloader) run(ctx context.Context) (*DownloadResult, error) {
	defer func() {
		if d.f != nil {
			d.f.Close()
		}
		if d.lock != nil {
			d.lock.UnlockAndRemove()
		}
	}()
	st, ok, err := d.store.Load(ctx, d.key)
	var corrupt *CorruptStateError
	switch {
	case errors.As(err, &corrupt) && d.opts.StartOver:
		ok = false
	case err != nil:
		return nil, err
	}
	if ok && d.name == "" {
		if n := SafeFileName(st.Name); n != "" {
			d.name = n
		}
	}
	// One transfer per .part: lock it before anything is removed, truncated
	// or sent (a name the server chooses is locked once it is known).
	if d.name != "" {
		if err := d.lockPart(); err != nil {
			return nil, err
		}
	}
	if d.opts.StartOver {
		ok = false
		if d.name != "" {
			if err := removeIfExists(d.partPath()); err != nil {
				return nil, err
			}
		}
		if err := d.store.Delete(ctx, d.key); err != nil {
			return nil, err
		}
	}
	d.st = ResumeState{URL: d.shown, Size: -1}
	if d.name != "" {
		size, exists, err := fileSize(d.partPath())
		if err != nil {
			return nil, err
		}
		switch {
		case !exists:
		case !ok:
			d.restartLocal("a .part file without saved state cannot be trusted")
		case st.ETag == "" && st.LastModified == "" || isWeak(st.ETag) && st.LastModified == "":
			d.restartLocal("the server gave no strong validator to resume against")
		case st.Size >= 0 && size > st.Size:
			d.restartLocal("the .part file is larger than the file")
		default:
			d.st = st
			d.offset = size
			d.result.Resumed = size > 0
		}
	}
	d.high = d.offset
	if d.offset > 0 {
		d.emit(Event{Type: EventResume, Done: d.offset})
	} else {
		d.emit(Event{Type: EventStart, Total: -1})
	}

	p := pipelineFor(d.opts.Pipeline, "download", d.emit)
	for !d.done {
		if err := p.Do(ctx, d.attempt); err != nil {
			if d.f != nil {
				d.checkpoint(context.WithoutCancel(ctx))
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if d.restarts > maxRestarts {
			return nil, fmt.Errorf("transfer: download %s: the server's answers kept contradicting each other (%d restarts); giving up", d.shown, d.restarts)
		}
	}
	return d.finish(ctx)
}

// restartLocal forgets the .part (it will be truncated when opened).
func (d *downloader) restartLocal(reason string) {
	d.offset = 0
	d.st = ResumeState{URL: d.shown, Size: -1, Name: d.st.Name}
	d.result.Restarts++
	d.emit(Event{Type: EventRestart, Reason: reason})
}

// restart is restartLocal after a server answer that contradicts the state;
// it asks the Pipeline loop for a new request right away.
func (d *downloader) restart(reason string) error {
	d.restarts++
	d.restartLocal(reason)
	return nil
}

func isWeak(etag string) bool { return strings.HasPrefix(etag, "W/") }

// validator returns the If-Range value: a strong ETag, else Last-Modified.
func (d *downloader) validator() string {
	if d.st.ETag != "" && !isWeak(d.st.ETag) {
		return d.st.ETag
	}
	return d.st.LastModified
}

// attempt sends one request and copies its body. It returns nil when the
// download is complete (d.done), when it must start over, or when the body
// was cut after making progress (so the Pipeline's attempt count restarts);
// otherwise the error that the Pipeline should judge.
func (d *downloader) attempt(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := d.request(ctx)
	if req == nil {
		return err // nil: start over
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return redact.URLError(err) // its message quotes the URL, query and all
	}
	defer resp.Body.Close()
	body, err := d.judge(resp, d.offset)
	if body == nil {
		return err // nil: done, or start over
	}
	d.digest = resp.Header.Get("Repr-Digest")
	if d.name == "" {
		if err := d.nameFile(resp); err != nil {
			return err
		}
	}
	if err := d.open(); err != nil {
		return err
	}
	// The validators and size must be durable before the first byte of the
	// body is, or a crash could leave bytes we cannot vouch for.
	if err := d.save(ctx); err != nil {
		return err
	}
	return d.copyBody(ctx, resp.Body, body.limit, body.endsFile, cancel)
}

// request builds the GET of this attempt: a range from d.offset with
// If-Range when resuming. A nil request with a nil error means start over.
func (d *downloader) request(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return nil, rebound.Permanent(redact.URLError(err))
	}
	for k, v := range d.opts.Header {
		req.Header[k] = v
	}
	// Ranges count bytes of the identity encoding; never let the transport
	// ask for gzip and decode it behind our back.
	req.Header.Set("Accept-Encoding", "identity")
	if d.offset > 0 && d.f == nil {
		// Hold the .part we resume before asking for what follows it.
		if err := d.open(); err != nil {
			return nil, err
		}
	}
	if d.offset > 0 && d.validator() == "" && d.unframed {
		return nil, d.unconfirmable()
	}
	if d.offset > 0 && d.validator() == "" {
		// Counted: a server that sends a part without a validator each
		// time must run out of restarts, not loop for ever.
		d.restarts++
		d.restartLocal("the server gave no strong validator to resume against")
	}
	if d.offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", d.offset))
		req.Header.Set("If-Range", d.validator())
	}
	if err := reboundhttp.ValidateRequest(req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err) // permanent: net/http would refuse it, every time
	}
	return req, nil
}

// bodyPlan is what judge expects of a body worth copying.
type bodyPlan struct {
	limit int64 // bytes this body should carry; -1 unknown
	// Whether a clean end of this body proves the end of the file: only a
	// whole-file answer whose framing (chunked, HTTP/2) marks the end. A 206
	// "A-B/*" is what the server chose to send, not the rest of the file.
	endsFile bool
}

// judge reads the answer to a request for the bytes from asked: a plan for
// copying its body, or none with the error to return (nil when the
// download is done, or must start over).
func (d *downloader) judge(resp *http.Response, asked int64) (*bodyPlan, error) {
	switch resp.StatusCode {
	case http.StatusOK:
		if asked > 0 && d.unframed {
			return nil, d.unconfirmable()
		}
		if asked > 0 {
			d.restarts++
			d.restartLocal("the server sent the whole file (it ignored the range, or the file changed)")
		}
		endsFile := resp.ContentLength >= 0 || resp.ProtoMajor >= 2 || slices.Contains(resp.TransferEncoding, "chunked")
		d.unframed = !endsFile
		d.st.ETag, d.st.LastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		d.st.Size = resp.ContentLength
		d.md5 = resp.Header.Get("Content-MD5")
		return &bodyPlan{limit: resp.ContentLength, endsFile: endsFile}, nil
	case http.StatusPartialContent:
		return d.partial(resp, asked)
	case http.StatusRequestedRangeNotSatisfiable:
		v := resp.Header.Get("Content-Range")
		cr, err := ParseContentRange(v)
		atEnd := err == nil && cr.Total == asked && (d.st.Size == asked || d.st.Size < 0) ||
			v == "" && d.st.Size < 0 // a total nobody knows: "nothing past here" is the end
		if asked > 0 && atEnd {
			// We already hold every byte (a crash came between the last write
			// and the rename, or the total was unknown and this confirms
			// it). finish checks what it can.
			if err := d.open(); err != nil {
				return nil, err
			}
			d.done = true
			return nil, nil
		}
		return nil, d.restart("the server cannot serve the rest (416)")
	}
	if resp.StatusCode >= 400 {
		return nil, statusError(resp, true)
	}
	return nil, rebound.Permanent(fmt.Errorf("transfer: download %s: unexpected answer %s", d.shown, redact.Printable(resp.Status)))
}

// partial judges a 206 to a request for the bytes from asked: it must be
// the part asked for, of the file whose start we hold.
func (d *downloader) partial(resp *http.Response, asked int64) (*bodyPlan, error) {
	cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
	etag := resp.Header.Get("ETag")
	switch {
	case err != nil:
		return nil, d.restart("the server's Content-Range is unreadable: " + err.Error())
	case cr.Start != asked:
		return nil, d.restart(fmt.Sprintf("the server sent bytes from %d, not the %d asked for", cr.Start, asked))
	case asked > 0 && cr.Total >= 0 && d.st.Size >= 0 && cr.Total != d.st.Size:
		return nil, d.restart(fmt.Sprintf("the file's size changed from %d to %d", d.st.Size, cr.Total))
	case asked > 0 && etag != "" && d.st.ETag != "" && etag != d.st.ETag:
		return nil, d.restart("the file's ETag changed")
	case asked > 0 && !d.carriesValidator(resp.Header):
		// Without the validator we sent, nothing says these bytes are
		// of the file we hold the start of (If-Range may have been
		// dropped on the way).
		return nil, d.restart("the server's partial answer does not carry the validator sent in If-Range")
	case resp.ContentLength >= 0 && resp.ContentLength != cr.End-cr.Start+1:
		return nil, d.restart("the server's Content-Length does not match its Content-Range")
	}
	if asked == 0 {
		d.st.ETag, d.st.LastModified = etag, resp.Header.Get("Last-Modified")
	}
	if cr.Total >= 0 {
		d.st.Size = cr.Total
	}
	d.md5 = ""
	return &bodyPlan{limit: cr.End - cr.Start + 1}, nil
}

// nameFile names the file from the answer, when the caller gave no path,
// and locks its .part.
func (d *downloader) nameFile(resp *http.Response) error {
	d.name = SafeFileName(nameFromDisposition(resp.Header.Get("Content-Disposition")))
	if d.name == "" {
		d.name = SafeFileName(nameFromURL(resp.Request.URL))
	}
	if d.name == "" {
		d.name = "download"
	}
	// A name the server chose must not replace a file the user has
	// (curl -OJ refuses too); a path given in Path may.
	if _, err := os.Lstat(filepath.Join(d.dir, d.name)); err == nil {
		return rebound.Permanent(fmt.Errorf("%w: %w: download %s: the server names the file %q and %s already exists; it was left untouched. "+
			"Choose the output with DownloadOptions.Path (an existing file there is replaced), or move the file away",
			ErrInvalid, ErrFileExists, d.shown, d.name, filepath.Join(d.dir, d.name)))
	}
	d.st.Name = d.name
	if err := d.lockPart(); err != nil {
		return rebound.Permanent(err)
	}
	return nil
}

// unconfirmable ends a download whose end no answer can prove.
func (d *downloader) unconfirmable() error {
	return rebound.Permanent(fmt.Errorf("transfer: download %s: the server sends no length and no framing, and cannot resume (no validator, "+
		"or ranges ignored), so the end of the file cannot be told from a cut connection", d.shown))
}

// carriesValidator reports whether a 206 answers the If-Range we sent: the
// same strong ETag, or the same Last-Modified when that was the validator.
func (d *downloader) carriesValidator(h http.Header) bool {
	if v := d.validator(); v == d.st.ETag {
		return h.Get("ETag") == v
	}
	return h.Get("Last-Modified") == d.st.LastModified
}

// lockPart takes the lock beside the .part (FILE.part.lock).
func (d *downloader) lockPart() error {
	if d.lock != nil {
		return nil
	}
	l, err := lockTarget(d.partPath()+".lock", "download to "+filepath.Join(d.dir, d.name))
	d.lock = l
	return err
}

// open opens the .part (never through a link: see openPart) and cuts it to
// d.offset, dropping any tail that belongs to nothing we know of.
func (d *downloader) open() error {
	if d.f == nil {
		f, err := openPart(d.partPath())
		if errors.Is(err, ErrInvalid) {
			return rebound.Permanent(err)
		}
		if err != nil {
			return rebound.Permanent(fmt.Errorf("transfer: %w", err))
		}
		d.f = f
		if fi, err := f.Stat(); err == nil && fi.Size() < d.offset {
			// Changed since we measured it: what it holds is not what the
			// state describes.
			d.restartLocal("the .part file is shorter than its saved state")
		}
	}
	if err := d.f.Truncate(d.offset); err != nil {
		return rebound.Permanent(fmt.Errorf("transfer: %w", err))
	}
	if _, err := d.f.Seek(d.offset, io.SeekStart); err != nil {
		return rebound.Permanent(fmt.Errorf("transfer: %w", err))
	}
	return nil
}

func (d *downloader) save(ctx context.Context) error {
	d.st.Offset = d.offset
	if err := d.store.Save(ctx, d.key, d.st); err != nil {
		return rebound.Permanent(err)
	}
	d.lastSaved = d.clock.Now()
	return nil
}

// checkpoint records the offset reached; a failure here is not worth ending
// the download for (the .part size is what resume trusts).
func (d *downloader) checkpoint(ctx context.Context) { _ = d.save(ctx) }

func (d *downloader) copyBody(ctx context.Context, body io.Reader, limit int64, endsFile bool, cancel context.CancelFunc) error {
	sr := newStallReader(body, d.clock, d.stall, cancel)
	defer sr.stop()
	start, high := d.offset, d.high
	buf := make([]byte, 256<<10)
	for {
		want := int64(len(buf))
		if limit >= 0 {
			if left := limit - (d.offset - start); left < want {
				want = left
			}
		}
		if want == 0 {
			break
		}
		n, rerr := sr.Read(buf[:want])
		if n > 0 {
			if _, werr := d.f.Write(buf[:n]); werr != nil {
				// werr (an *os.PathError) names the file already.
				return rebound.Permanent(fmt.Errorf("transfer: %w", werr))
			}
			d.offset += int64(n)
			if d.offset > d.high {
				// Only bytes past the most this run ever held are progress:
				// a server that restarts us from 0, sends the same prefix
				// and lies again must run out of restarts, not loop for ever.
				d.high = d.offset
				d.restarts = 0
			}
			if now := d.clock.Now(); now.Sub(d.lastEmit) >= d.every {
				d.lastEmit = now
				d.emit(Event{Type: EventProgress, Done: d.offset})
				if now.Sub(d.lastSaved) >= time.Second {
					d.checkpoint(ctx)
				}
			}
		}
		if rerr == io.EOF {
			if limit >= 0 && d.offset-start < limit {
				rerr = io.ErrUnexpectedEOF
			} else {
				break
			}
		}
		if rerr != nil {
			d.checkpoint(context.WithoutCancel(ctx))
			if errors.Is(ctx.Err(), context.Canceled) && !errors.Is(rerr, ErrStalled) {
				// The caller stopped us (Ctrl-C). The body's error is then
				// the context's cause, such as "interrupt signal received",
				// which Classify takes for a transient failure: it was
				// reported as a lost connection and another attempt begun.
				return ctx.Err()
			}
			// Progress is passing the most this run ever held: a server that
			// restarts us from 0 and is cut before that point is failing, and
			// must exhaust the attempts rather than loop for ever.
			if d.offset > high && rebound.Classify(rerr).Kind.Retryable() {
				d.emit(Event{Type: EventRetry, Err: rerr, Done: d.offset})
				return nil // progress made: resume at once, with a fresh attempt count
			}
			return rerr
		}
	}
	d.emit(Event{Type: EventProgress, Done: d.offset})
	if d.st.Size >= 0 && d.offset < d.st.Size {
		// The server sent a shorter range than asked; ask for the rest.
		return d.save(ctx)
	}
	if d.st.Size < 0 && !endsFile {
		// Nobody has said where the file ends: ask again from here until
		// the server says there is no more (416), never take the end of a
		// range, or of an unframed body, for the end of the file.
		return d.save(ctx)
	}
	d.st.Size = d.offset
	d.done = true
	return nil
}

// finish syncs, verifies, renames the .part into place and drops the state.
func (d *downloader) finish(ctx context.Context) (*DownloadResult, error) {
	part, final := d.partPath(), filepath.Join(d.dir, d.name)
	if err := d.f.Sync(); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	verified, err := d.verify()
	if err != nil {
		d.f.Close()
		d.f = nil
		os.Remove(part)
		d.store.Delete(ctx, d.key)
		return nil, err
	}
	if err := d.f.Close(); err != nil {
		d.f = nil
		return nil, fmt.Errorf("transfer: %w", err)
	}
	d.f = nil
	if err := os.Rename(part, final); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if err := syncDir(d.dir); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if err := d.store.Delete(ctx, d.key); err != nil {
		return nil, err
	}
	d.result.Path, d.result.Size, d.result.Verified = final, d.offset, verified
	d.emit(Event{Type: EventDone, Name: final, Done: d.offset, Total: d.offset})
	return &d.result, nil
}

// verify hashes the completed file once, if anything asks for a check: the
// caller's SHA-256, the server's Repr-Digest (sha-256 or sha-512), or a
// Content-MD5 that covered the whole file.
func (d *downloader) verify() (string, error) {
	type check struct {
		name, alg string
		want      []byte
		h         hash.Hash
	}
	var checks []check
	if d.wantSHA != nil {
		checks = append(checks, check{"sha256", "sha256", d.wantSHA, sha256.New()})
	}
	for alg, want := range parseReprDigest(d.digest) {
		switch alg {
		case "sha-256":
			checks = append(checks, check{"repr-digest", alg, want, sha256.New()})
		case "sha-512":
			checks = append(checks, check{"repr-digest", alg, want, sha512.New()})
		}
	}
	if d.md5 != "" {
		if want, err := base64.StdEncoding.DecodeString(d.md5); err == nil && len(want) == md5.Size {
			checks = append(checks, check{"content-md5", "md5", want, md5.New()})
		}
	}
	if len(checks) == 0 {
		return "", nil
	}
	ws := make([]io.Writer, len(checks))
	for i := range checks {
		ws[i] = checks[i].h
	}
	if _, err := io.Copy(io.MultiWriter(ws...), io.NewSectionReader(d.f, 0, d.offset)); err != nil {
		return "", fmt.Errorf("transfer: %w", err)
	}
	var names []string
	for _, c := range checks {
		if have := c.h.Sum(nil); !bytes.Equal(have, c.want) {
			return "", &ChecksumError{Path: filepath.Join(d.dir, d.name), Algorithm: c.alg,
				Want: hex.EncodeToString(c.want), Have: hex.EncodeToString(have)}
		}
		names = append(names, c.name)
	}
	return strings.Join(names, ","), nil
}

// parseReprDigest reads the byte sequences of an RFC 9530 Repr-Digest
// dictionary ("sha-256=:BASE64:, sha-512=:...:"); unreadable members are
// skipped, as the RFC asks of unknown algorithms.
func parseReprDigest(v string) map[string][]byte {
	if v == "" {
		return nil
	}
	out := map[string][]byte{}
	for member := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok || len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1])
		if err != nil {
			continue
		}
		out[strings.ToLower(k)] = b
	}
	return out
}

// fileSize reports the size of the regular file p. A symlink is refused: a
// .part planted as a link must not make the download write elsewhere.
func fileSize(p string) (int64, bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("transfer: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, false, notRegular(p)
	}
	return fi.Size(), true, nil
}

func notRegular(p string) error { return fmt.Errorf("%w: %s is not a regular file", ErrInvalid, p) }

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("transfer: %w", err)
	}
	return nil
}

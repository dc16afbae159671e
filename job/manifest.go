package job

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/reboundhttp"
)

// Request is one line of a manifest: an HTTP request to make once.
//
//	{"id": "user-42", "method": "PUT", "url": "https://api.example.com/users/42",
//	 "headers": {"Content-Type": "application/json"}, "body": {"name": "Ada"}}
//
// Body is JSON: a JSON string is sent as its text, anything else (object,
// array, number) as JSON with Content-Type application/json unless headers
// say otherwise. BodyFile names a file to send instead (relative paths are
// relative to the manifest's folder).
type Request struct {
	// ID names the item: required, unique in the manifest, at most MaxIDLen
	// bytes. The item's progress is stored under it, and its idempotency key
	// is derived from it (see IdempotencyKey).
	ID string `json:"id"`
	// Method is the HTTP method; empty means GET.
	Method string `json:"method,omitempty"`
	// URL is the absolute http or https URL to send the request to.
	URL string `json:"url"`
	// Headers are set on the request, one value per name; an
	// Idempotency-Key here replaces the one derived from the item.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the request body as JSON (see above); at most one of Body and
	// BodyFile may be set.
	Body json.RawMessage `json:"body,omitempty"`
	// BodyFile names a regular file to send as the body, opened afresh for
	// every attempt; see BodyPath.
	BodyFile string `json:"body_file,omitempty"`
}

// MaxLine is the longest manifest line accepted: the line is the item's
// stored payload. Larger bodies belong in body_file.
const MaxLine = checkpoint.MaxPayloadLen

// MaxIDLen bounds an item ID: the store's limit (checkpoint.MaxIDLen), so a
// line the manifest accepts is never refused when its item is stored.
const MaxIDLen = checkpoint.MaxIDLen

// LineError is what is wrong with one manifest line.
type LineError struct {
	// Line is the line's number, from 1.
	Line int
	// Err says what is wrong with it.
	Err error
}

// Error says which line is bad and why.
func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the line's cause, e.g. a body_file's fs.ErrNotExist.
func (e LineError) Unwrap() error { return e.Err }

// ManifestError lists the bad lines of a manifest (the first 20) and how
// many more there were. Nothing has been sent when it is returned.
type ManifestError struct {
	// Path is the manifest's file.
	Path string
	// Lines are the first bad lines, in order.
	Lines []LineError
	// More counts the bad lines beyond Lines.
	More int
}

// Error lists the bad lines, one per line of text, and how many more there
// were.
func (e *ManifestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manifest %s has %d bad line(s):", e.Path, len(e.Lines)+e.More)
	for _, l := range e.Lines {
		b.WriteString("\n  " + l.Error())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.More)
	}
	return b.String()
}

// Unwrap returns the causes of the reported bad lines, so that errors.Is
// and errors.As look into them.
func (e *ManifestError) Unwrap() []error {
	errs := make([]error, len(e.Lines))
	for i, l := range e.Lines {
		errs[i] = l
	}
	return errs
}

// maxReported is how many bad lines a ManifestError lists.
const maxReported = 20

// ScanManifest reads a JSONL manifest from r line by line, never holding more
// than one line, and calls fn with each valid request and its raw line. Blank
// lines and lines starting with '#' are skipped. dir resolves relative
// body_file paths. Bad lines are collected (fn is not called for them) and
// returned as a *ManifestError once the whole input is read; an error from fn
// or from reading stops the scan at once.
func ScanManifest(r io.Reader, name, dir string, fn func(line int, req Request, raw []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	merr := &ManifestError{Path: name}
	bad := func(line int, err error) {
		if len(merr.Lines) < maxReported {
			merr.Lines = append(merr.Lines, LineError{line, err})
		} else {
			merr.More++
		}
	}
	for line := 1; ; line++ {
		raw, err := readLine(br)
		if errors.Is(err, errLineTooLong) {
			bad(line, fmt.Errorf("longer than %d bytes (put large bodies in body_file)", MaxLine))
			continue
		}
		if err == io.EOF && raw == nil {
			break
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading manifest %s: %w", name, err)
		}
		trimmed := bytes.TrimSpace(raw)
		if len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		req, verr := parseLine(trimmed, dir)
		if verr != nil {
			bad(line, verr)
			continue
		}
		if ferr := fn(line, req, trimmed); ferr != nil {
			return ferr
		}
	}
	if len(merr.Lines) > 0 {
		return merr
	}
	return nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its line ending ("\n", "\r\n", or
// none at the end of the input), or errLineTooLong after skipping the rest of
// a line longer than MaxLine. The limit counts the line without its ending,
// so it is the same for LF and CRLF files, and a line it accepts always fits
// in an item's payload.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLine+len("\r\n") { // too long, whatever its ending
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(buf) == 0 {
				return nil, io.EOF
			}
		case err != nil:
			return nil, err
		}
		line := bytes.TrimSuffix(buf, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > MaxLine {
			return nil, errLineTooLong
		}
		return line, nil
	}
}

// parseLine decodes and validates one manifest line.
func parseLine(raw []byte, dir string) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("not a JSON object with known fields: %v", err)
	}
	// dec.More is false before a stray '}' or ']': look at what is left.
	if rest := bytes.TrimSpace(raw[dec.InputOffset():]); len(rest) > 0 {
		return req, errors.New("more than one JSON value on the line")
	}
	if err := exactFields(raw); err != nil {
		return req, err
	}
	if err := req.validate(dir); err != nil {
		return req, err
	}
	return req, nil
}

// manifestFields are Request's JSON field names.
var manifestFields = [...]string{"id", "method", "url", "headers", "body", "body_file"}

// exactFields refuses a field name that is not exactly one of Request's, or
// that is given twice: encoding/json matches names without regard to case
// ("heAders" fills Headers) and lets a second "id" silently win. raw is a
// JSON object that decoded without error.
func exactFields(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return err
	}
	var seen [len(manifestFields)]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		i := slices.Index(manifestFields[:], name)
		switch {
		case i < 0:
			return fmt.Errorf("unknown field %q (field names are %s, in lower case)", name, strings.Join(manifestFields[:], ", "))
		case seen[i]:
			return fmt.Errorf("field %q given twice", name)
		}
		seen[i] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

func (r *Request) validate(dir string) error {
	switch {
	case r.ID == "":
		return errors.New(`missing "id"`)
	case len(r.ID) > MaxIDLen:
		return fmt.Errorf(`"id" longer than %d bytes`, MaxIDLen)
	case r.URL == "":
		return errors.New(`missing "url"`)
	}
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	if !validMethod(r.Method) {
		return fmt.Errorf("method %q is not a valid HTTP method", r.Method)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return fmt.Errorf("url: %v", err)
	}
	if u.Scheme == "" {
		// RedactURL would show ":///path"; without a scheme nothing secret
		// is parsed out of it, but a user:pass@ could still be there.
		return fmt.Errorf("url %q is not absolute: it needs http:// or https://", (&url.URL{Host: u.Host, Path: u.Path}).String())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: scheme must be http or https", reboundhttp.RedactURL(u))
	}
	if u.Hostname() == "" { // "http://:80/" has a Host but no host
		return fmt.Errorf("url %q has no host", reboundhttp.RedactURL(u))
	}
	if strings.Contains(u.RawQuery, " ") {
		// url.Parse keeps it, net/http writes it into the request line as
		// it is, and the server cannot parse that line.
		return fmt.Errorf("url %q: its query holds a space; write it as %%20", reboundhttp.RedactURL(u))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("url %q: port %s is not in 1-65535", reboundhttp.RedactURL(u), p)
		}
	}
	// net/http would refuse these at send time with an error that reads as
	// a network fault; the header's value is never shown, it may be secret.
	var names map[string]bool
	for k, v := range r.Headers {
		if !validToken(k) {
			return fmt.Errorf("header name %q is not valid", k)
		}
		if !reboundhttp.ValidHeaderValue(v) {
			return fmt.Errorf("header %q: its value holds a control character (CR, LF, NUL, ...), which HTTP does not allow", k)
		}
		if connectionHeader(k, v) {
			return fmt.Errorf("header %q is a connection header, which the client sets itself (HTTP/2 refuses it)", k)
		}
		if len(r.Headers) > 1 {
			if names == nil {
				names = make(map[string]bool, len(r.Headers))
			}
			c := http.CanonicalHeaderKey(k)
			if names[c] {
				return fmt.Errorf("header %q given twice (header names ignore case)", c)
			}
			names[c] = true
		}
	}
	if len(r.Body) > 0 && r.BodyFile != "" {
		return errors.New(`"body" and "body_file" are both set`)
	}
	if r.BodyFile != "" {
		p := r.BodyPath(dir)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("body_file: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("body_file %s is not a regular file", p)
		}
	}
	return nil
}

// connectionHeader reports whether k: v is a connection-level header that
// net/http's HTTP/2 client refuses before sending (an error that reads as
// a network fault), as RFC 9113 §8.2.2 says; over HTTP/1.1 it would be
// dropped or break the framing. Connection: close or keep-alive are fine.
func connectionHeader(k, v string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Upgrade", "Transfer-Encoding":
		return true
	case "Connection":
		return !strings.EqualFold(v, "close") && !strings.EqualFold(v, "keep-alive")
	}
	return false
}

// BodyPath resolves BodyFile against the manifest's folder.
func (r *Request) BodyPath(dir string) string {
	if r.BodyFile == "" || strings.HasPrefix(r.BodyFile, "/") || dir == "" {
		return r.BodyFile
	}
	return dir + string(os.PathSeparator) + r.BodyFile
}

// BodyBytes returns the inline body to send and whether it is JSON (an
// object, array, number or literal rather than a JSON string).
func (r *Request) BodyBytes() (body []byte, isJSON bool, err error) {
	if len(r.Body) == 0 || string(r.Body) == "null" {
		return nil, false, nil
	}
	if r.Body[0] == '"' {
		var s string
		if err := json.Unmarshal(r.Body, &s); err != nil {
			return nil, false, err
		}
		return []byte(s), false, nil
	}
	return r.Body, true, nil
}

func validMethod(m string) bool { return reboundhttp.ValidToken(m) }

func validToken(s string) bool { return reboundhttp.ValidToken(s) }

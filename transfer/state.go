package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ResumeState is what a transfer keeps to resume (named apart from
// rebound.State, a breaker's state, and checkpoint.ItemState). Download uses
// URL, Name, Offset, Size, ETag and LastModified; Upload uses URL, Offset,
// Size, UploadURL, Fingerprint and SentSHA256.
type ResumeState struct {
	// URL is the resource downloaded, or the tus endpoint uploaded to.
	URL string `json:"url,omitempty"`
	// Name is the local file name a download chose (from the server when the
	// caller gave none).
	Name string `json:"name,omitempty"`
	// Offset is the last byte count known to be safe: on the local disk for a
	// download, on the server for an upload.
	Offset int64 `json:"offset"`
	// Size is the total size in bytes; -1 when the server did not say.
	Size int64 `json:"size"`
	// ETag is the download's entity tag, as the server sent it. A strong
	// ETag (else LastModified) is sent as If-Range on resume, so a changed
	// file is sent whole instead of spliced onto the old bytes.
	ETag string `json:"etag,omitempty"`
	// LastModified is the download's Last-Modified header value, verbatim.
	LastModified string `json:"last_modified,omitempty"`
	// UploadURL is the tus upload resource.
	UploadURL string `json:"upload_url,omitempty"`
	// Fingerprint identifies the uploaded file's content and place.
	Fingerprint string `json:"fingerprint,omitempty"`
	// SentSHA256 is the upload's hex SHA-256 of the file's first Offset
	// bytes, taken as the server confirmed them: a resume first checks that
	// the file still holds those bytes, or starts over.
	SentSHA256 string `json:"sent_sha256,omitempty"`
}

// StateStore keeps transfer state between runs, one ResumeState per key (the
// transfer builds the key from what it moves and where). Implementations
// must be safe for concurrent use with different keys.
type StateStore interface {
	// Load returns key's State; ok is false, with a nil error, for a key
	// the store does not hold.
	Load(ctx context.Context, key string) (st ResumeState, ok bool, err error)
	// Save stores st under key, replacing what was there. It must be
	// atomic: a crash leaves the old ResumeState or the new one, never a mix.
	Save(ctx context.Context, key string, st ResumeState) error
	// Delete forgets key's ResumeState, once the transfer is done or must start
	// over.
	Delete(ctx context.Context, key string) error
}

// FileStateStore is a StateStore that keeps one JSON file per key in a
// directory, written atomically (temporary file, fsync, rename) with mode
// 0600. Its methods are safe for concurrent use with different keys.
type FileStateStore struct {
	dir string
}

// NewFileStateStore returns a store in dir, creating it (mode 0700) if needed.
func NewFileStateStore(dir string) (*FileStateStore, error) {
	if dir == "" {
		return nil, errors.New("transfer: state directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer: state directory: %w", err)
	}
	return &FileStateStore{dir: dir}, nil
}

// CorruptStateError reports a state file that cannot be read as State. The
// transfer stops rather than silently starting over; remove the file (or ask
// for a fresh start) to go on.
type CorruptStateError struct {
	Path string // the state file
	Err  error  // why it was rejected: a JSON error, or impossible values
}

// Error names the file and says how to go on.
func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("transfer: corrupt state file %s: %v (delete it, or start over, to begin again)", e.Path, e.Err)
}

// Unwrap returns the parse error.
func (e *CorruptStateError) Unwrap() error { return e.Err }

// Path returns the file that holds key's state: the key's safe characters
// (for a person looking at the directory) and a hash of the whole key (so
// that different keys never share a file).
func (s *FileStateStore) Path(key string) string {
	sum := sha256.Sum256([]byte(key))
	var b strings.Builder
	for _, r := range key {
		if b.Len() >= 48 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return filepath.Join(s.dir, strings.TrimLeft(b.String(), ".")+"-"+hex.EncodeToString(sum[:8])+".json")
}

// Load reads key's state. A file that exists but does not parse is a
// *CorruptStateError.
func (s *FileStateStore) Load(ctx context.Context, key string) (ResumeState, bool, error) {
	p := s.Path(key)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return ResumeState{}, false, nil
	}
	if err != nil {
		return ResumeState{}, false, fmt.Errorf("transfer: read state: %w", err)
	}
	var st ResumeState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return ResumeState{}, false, &CorruptStateError{Path: p, Err: err}
	}
	if dec.More() {
		return ResumeState{}, false, &CorruptStateError{Path: p, Err: errors.New("trailing data")}
	}
	if st.Offset < 0 || st.Size < -1 || (st.Size >= 0 && st.Offset > st.Size) {
		return ResumeState{}, false, &CorruptStateError{Path: p, Err: fmt.Errorf("offset %d, size %d", st.Offset, st.Size)}
	}
	return st, true, nil
}

// Save writes key's state atomically.
func (s *FileStateStore) Save(ctx context.Context, key string, st ResumeState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.Path(key), data, 0o600)
}

// Delete removes key's state; a missing key is not an error.
func (s *FileStateStore) Delete(ctx context.Context, key string) error {
	err := os.Remove(s.Path(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("transfer: delete state: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("transfer: write state: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("transfer: write state: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("transfer: write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("transfer: write state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("transfer: write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("transfer: write state: %w", err)
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/rebound-go/rebound/checkpoint"
)

// CheckpointStore is a StateStore kept in a checkpoint.Store, e.g. the
// PostgreSQL database that batch jobs on many machines share. Each key is a
// job of its own, "transfer:KEY", holding one item whose Progress record
// carries the ResumeState (the store's progress slot: SaveProgress with lease 0);
// Save is durable when it returns. The default, for the library and the
// CLI alike, is a FileStateStore.
type CheckpointStore struct {
	st checkpoint.Store
}

// NewCheckpointStore keeps transfer state in st. Closing st is the caller's.
func NewCheckpointStore(st checkpoint.Store) *CheckpointStore { return &CheckpointStore{st: st} }

const (
	transferJobPrefix = "transfer:"
	transferItem      = "state"
	transferMeta      = "rebound transfer state v1"
)

// stateExtra holds the ResumeState fields that checkpoint.Progress has no slot for.
type stateExtra struct {
	URL          string `json:"url,omitempty"`
	Name         string `json:"name,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Fingerprint  string `json:"fingerprint,omitempty"`
	SentSHA256   string `json:"sent_sha256,omitempty"`
}

// Load implements StateStore.
func (s *CheckpointStore) Load(ctx context.Context, key string) (ResumeState, bool, error) {
	it, err := s.st.Item(ctx, transferJobPrefix+key, transferItem)
	if errors.Is(err, checkpoint.ErrNoJob) || errors.Is(err, checkpoint.ErrNoItem) {
		return ResumeState{}, false, nil
	}
	if err != nil {
		return ResumeState{}, false, err
	}
	p := it.Progress
	var x stateExtra
	if len(p.Extra) > 0 {
		if err := json.Unmarshal(p.Extra, &x); err != nil {
			// A *CorruptStateError, so that StartOver gets past it as it
			// does for a state file; the key (it holds the URL, query
			// included) stays out of the message.
			sum := sha256.Sum256([]byte(key))
			return ResumeState{}, false, &CorruptStateError{Path: "checkpoint record " + transferJobPrefix + hex.EncodeToString(sum[:8]), Err: err}
		}
	}
	return ResumeState{URL: x.URL, Name: x.Name, Offset: p.Offset, Size: p.Size, ETag: p.ETag,
		LastModified: x.LastModified, UploadURL: p.UploadURL, Fingerprint: x.Fingerprint, SentSHA256: x.SentSHA256}, true, nil
}

// Save implements StateStore: it creates the key's record when needed and
// returns once the ResumeState is durable.
func (s *CheckpointStore) Save(ctx context.Context, key string, st ResumeState) error {
	job := transferJobPrefix + key
	extra, err := json.Marshal(stateExtra{URL: st.URL, Name: st.Name, LastModified: st.LastModified, Fingerprint: st.Fingerprint, SentSHA256: st.SentSHA256})
	if err != nil {
		return err
	}
	if _, err := s.st.OpenJob(ctx, job, checkpoint.JobMeta{Fingerprint: transferMeta, Total: 1}); err != nil {
		return err
	}
	if _, err := s.st.Item(ctx, job, transferItem); errors.Is(err, checkpoint.ErrNoItem) {
		if err := s.st.AddItems(ctx, job, []checkpoint.Item{{ID: transferItem}}); err != nil && !errors.Is(err, checkpoint.ErrDuplicateID) {
			return err
		}
	} else if err != nil {
		return err
	}
	p := checkpoint.Progress{Offset: st.Offset, Size: st.Size, ETag: st.ETag, UploadURL: st.UploadURL, Extra: extra}
	// Lease 0: this record is a key/value slot, never leased.
	if err := s.st.SaveProgress(ctx, job, transferItem, 0, p); err != nil {
		return err
	}
	return s.st.Flush(ctx)
}

// Delete implements StateStore.
func (s *CheckpointStore) Delete(ctx context.Context, key string) error {
	return s.st.Restart(ctx, transferJobPrefix+key)
}

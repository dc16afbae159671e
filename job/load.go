package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/rebound-go/rebound/checkpoint"
)

// loadBatch is how many items one AddItems call (one transaction) adds.
const loadBatch = 1000

// LoadManifest makes sure the job named name holds every request of the
// manifest at path, and returns the job. A first pass validates the whole
// manifest (bad lines and duplicate IDs give a *ManifestError and nothing is
// stored) and fingerprints it; a job started from a different manifest is
// refused (checkpoint.ErrManifestChanged). A second pass adds the items the
// job does not have yet, so a load that was killed half-way continues.
// Memory stays bounded by one line plus 12 bytes per item for the duplicate
// check. With a store that several processes share (checkpoint.JobLocker),
// the load holds the job's lock, so workers that start together load the
// manifest once and the others join.
func LoadManifest(ctx context.Context, st checkpoint.Store, name, path string) (checkpoint.Job, error) {
	f, err := os.Open(path)
	if err != nil {
		return checkpoint.Job{}, fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	dir := filepath.Dir(path)

	h := sha256.New()
	seen := make(map[uint64]int32) // FNV-64 of ID -> line
	var total int64
	var dups []LineError
	err = ScanManifest(io.TeeReader(f, h), path, dir, func(line int, req Request, _ []byte) error {
		total++
		hf := fnv.New64a()
		hf.Write([]byte(req.ID))
		k := hf.Sum64()
		if first, ok := seen[k]; ok {
			dups = append(dups, LineError{line, fmt.Errorf("duplicate id %q (first on line %d)", req.ID, first)})
			return nil
		}
		seen[k] = int32(line)
		return nil
	})
	var merr *ManifestError
	if len(dups) > 0 && (err == nil || errors.As(err, &merr)) {
		// Report duplicates with the other bad lines, not in a second
		// round after those are fixed.
		if merr == nil {
			merr = &ManifestError{Path: path}
		}
		for _, d := range dups {
			if len(merr.Lines) < maxReported {
				merr.Lines = append(merr.Lines, d)
			} else {
				merr.More++
			}
		}
		slices.SortStableFunc(merr.Lines, func(a, b LineError) int { return a.Line - b.Line })
		err = merr
	}
	if err != nil {
		return checkpoint.Job{}, err
	}
	seen = nil
	if total == 0 {
		return checkpoint.Job{}, &ManifestError{Path: path, Lines: []LineError{{0, errors.New("no requests in the manifest")}}}
	}
	meta := checkpoint.JobMeta{Fingerprint: hex.EncodeToString(h.Sum(nil)), Total: total}
	if l, ok := st.(checkpoint.JobLocker); ok {
		// Workers that share the store and start together: the first one
		// loads, the others wait here and then find the job loaded.
		unlock, err := l.LockJob(ctx, name)
		if err != nil {
			return checkpoint.Job{}, err
		}
		defer unlock()
	}
	job, err := st.OpenJob(ctx, name, meta)
	if err != nil {
		return job, err
	}
	if job.Items >= total {
		return job, nil
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return job, fmt.Errorf("manifest: %w", err)
	}
	skip := job.Items
	batch := make([]checkpoint.Item, 0, loadBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := st.AddItems(ctx, name, batch); err != nil {
			return err
		}
		job.Items += int64(len(batch))
		batch = batch[:0]
		return nil
	}
	err = ScanManifest(f, path, dir, func(_ int, req Request, raw []byte) error {
		if skip > 0 {
			skip--
			return nil
		}
		batch = append(batch, checkpoint.Item{ID: req.ID, Payload: append([]byte(nil), raw...)})
		if len(batch) == loadBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return job, err
}

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
	return fill(ctx, st, name, meta, func(skip int64, add func(checkpoint.Item) error) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		return ScanManifest(f, path, dir, func(_ int, req Request, raw []byte) error {
			if skip > 0 {
				skip--
				return nil
			}
			return add(checkpoint.Item{ID: req.ID, Payload: append([]byte(nil), raw...)})
		})
	})
}

// fill opens the job with meta (refusing another manifest's job) and, if it
// holds fewer than meta.Total items, calls scan to add the rest: scan yields
// every item again, in the order of the first pass, skipping the first skip
// (those the job has), and passes each to add, which stores them in batches.
func fill(ctx context.Context, st checkpoint.Store, name string, meta checkpoint.JobMeta,
	scan func(skip int64, add func(checkpoint.Item) error) error) (checkpoint.Job, error) {
	total := meta.Total
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
	err = scan(job.Items, func(it checkpoint.Item) error {
		batch = append(batch, it)
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

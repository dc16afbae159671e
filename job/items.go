package job

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/fnv"
	"iter"

	"github.com/rebound-go/rebound/checkpoint"
)

// LoadItems makes sure the job named name holds every item that items
// yields, as (ID, payload) pairs, and returns the job: LoadManifest for
// items a Go program makes (rows of a query, files of a directory, a slice)
// rather than a JSONL file. The guarantees are LoadManifest's:
//
//   - A first pass checks every item (an ID of 1..MaxIDLen bytes, unique in
//     the job; a payload of at most checkpoint.MaxPayloadLen bytes) and
//     fingerprints the sequence; a bad item is an error matching
//     checkpoint.ErrInvalid, and nothing is stored.
//   - A job started from other items (or from a manifest) is refused with
//     checkpoint.ErrManifestChanged, so a resume never mixes two sets.
//   - A second pass adds the items the job does not have yet, in batches,
//     so a load that was killed half-way continues, and a resumed run
//     finds its items loaded and skips them.
//   - Memory stays bounded: 12 bytes per item for the duplicate check, plus
//     one batch of items.
//
// items is therefore ranged over twice and must yield the same items in
// the same order each time (a Seq over a slice, a query run again, a
// directory listed again in sorted order). If the second pass differs from
// the first, LoadItems returns an error saying so; the items added by then
// stay in the job. The payload is what the Handler gets as Task.Payload; it
// is copied, so the iterator may reuse its buffer.
func LoadItems(ctx context.Context, st checkpoint.Store, name string, items iter.Seq2[string, []byte]) (checkpoint.Job, error) {
	h := sha256.New()
	seen := make(map[uint64]int32) // FNV-64 of ID -> position, as LoadManifest does
	var total int64
	for id, payload := range items {
		total++
		if err := checkItem(total, id, payload); err != nil {
			return checkpoint.Job{}, err
		}
		hf := fnv.New64a()
		hf.Write([]byte(id))
		k := hf.Sum64()
		if first, ok := seen[k]; ok {
			return checkpoint.Job{}, fmt.Errorf("%w: item %d: duplicate id %q (first at item %d)", checkpoint.ErrInvalid, total, id, first)
		}
		seen[k] = int32(total)
		hashItem(h, id, payload)
		if total%loadBatch == 0 && ctx.Err() != nil {
			return checkpoint.Job{}, ctx.Err()
		}
	}
	seen = nil
	if total == 0 {
		return checkpoint.Job{}, fmt.Errorf("%w: job %s: no items to load", checkpoint.ErrInvalid, name)
	}
	sum := h.Sum(nil)
	// The prefix keeps the fingerprint of a set of items apart from that
	// of a manifest file, whatever their bytes.
	meta := checkpoint.JobMeta{Fingerprint: "items:" + hex.EncodeToString(sum), Total: total}
	return fill(ctx, st, name, meta, func(skip int64, add func(checkpoint.Item) error) error {
		h2 := sha256.New()
		var n int64
		for id, payload := range items {
			n++
			hashItem(h2, id, payload)
			if n <= skip {
				continue
			}
			if err := add(checkpoint.Item{ID: id, Payload: bytes.Clone(payload)}); err != nil {
				return err
			}
		}
		if n != total || !bytes.Equal(h2.Sum(nil), sum) {
			return fmt.Errorf("%w: job %s: the items changed between the two passes of LoadItems "+
				"(%d items, then %d); the iterator must yield the same items each time", checkpoint.ErrInvalid, name, total, n)
		}
		return nil
	})
}

// checkItem refuses an item the job could not store or key.
func checkItem(n int64, id string, payload []byte) error {
	switch {
	case id == "" || len(id) > MaxIDLen:
		return fmt.Errorf("%w: item %d: id must be 1..%d bytes, got %d", checkpoint.ErrInvalid, n, MaxIDLen, len(id))
	case len(payload) > checkpoint.MaxPayloadLen:
		return fmt.Errorf("%w: item %d (%q): payload of %d bytes, more than %d", checkpoint.ErrInvalid, n, id, len(payload), checkpoint.MaxPayloadLen)
	}
	return nil
}

// hashItem feeds one item to the fingerprint, length-prefixed, so that no
// two different sequences hash the same bytes.
func hashItem(h hash.Hash, id string, payload []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(id)))
	h.Write(n[:])
	h.Write([]byte(id))
	binary.BigEndian.PutUint64(n[:], uint64(len(payload)))
	h.Write(n[:])
	h.Write(payload)
}

package transfer

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/internal/redact"
)

func TestCheckpointStoreRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "transfers.db")
	open := func() *sqlite.Store {
		st, err := sqlite.Open(path, checkpoint.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ctx := context.Background()
	db := open()
	s := NewCheckpointStore(db)
	if _, ok, err := s.Load(ctx, "k"); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	want := ResumeState{URL: "https://h/f", Name: "f.bin", Offset: 42, Size: 100, ETag: `"v1"`,
		LastModified: "Wed, 21 Oct 2015 07:28:00 GMT", UploadURL: "https://h/files/1", Fingerprint: "fp", SentSHA256: "abc"}
	if err := s.Save(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	want.Offset = 77
	if err := s.Save(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// A new process: the state survives, as a resumed transfer needs.
	db = open()
	defer db.Close()
	s = NewCheckpointStore(db)
	got, ok, err := s.Load(ctx, "k")
	if err != nil || !ok || got != want {
		t.Fatalf("after reopen: %+v ok=%v err=%v, want %+v", got, ok, err, want)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(ctx, "k"); ok || err != nil {
		t.Fatalf("after delete: ok=%v err=%v", ok, err)
	}
}

// A record whose extra fields do not parse is a *CorruptStateError (its
// message names no CLI flag and no URL): a download fails on it, and
// StartOver gets past it (it once advised --start-over, which then failed on
// the same error).
func TestCheckpointStoreCorruptRecord(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "transfers.db"), checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e"`)
		w.Write([]byte("data"))
	}))
	defer srv.Close()
	ctx := context.Background()
	store := NewCheckpointStore(db)
	u := srv.URL + "/f?token=s3cret"
	out := filepath.Join(t.TempDir(), "f")
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	key := "get " + redact.Identity(pu) + " -> " + out // as Download names it
	if err := store.Save(ctx, key, ResumeState{URL: "x", Size: -1}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveProgress(ctx, transferJobPrefix+key, transferItem, 0, checkpoint.Progress{Extra: []byte(`{"url": 1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = Download(ctx, u, DownloadOptions{Path: out, Store: store})
	var corrupt *CorruptStateError
	if !errors.As(err, &corrupt) || strings.Contains(err.Error(), "--") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v, want a *CorruptStateError naming no flag and no query", err)
	}
	if _, err := Download(ctx, u, DownloadOptions{Path: out, Store: store, StartOver: true}); err != nil {
		t.Fatalf("start over: %v", err)
	}
	checkFile(t, out, []byte("data"))
}

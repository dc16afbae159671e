package transfer

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
)

func TestCheckpointStoreRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "transfers.db")
	open := func() *checkpoint.SQLite {
		st, err := checkpoint.OpenSQLite(path, checkpoint.Options{})
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
	want := State{URL: "https://h/f", Name: "f.bin", Offset: 42, Size: 100, ETag: `"v1"`,
		LastModified: "Wed, 21 Oct 2015 07:28:00 GMT", UploadURL: "https://h/files/1", Fingerprint: "fp"}
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

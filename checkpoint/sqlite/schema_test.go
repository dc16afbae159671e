package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
)

// SchemaVersion counts the migrations, as PostgreSQL's does: a new
// migration cannot be added without its version.
func TestSchemaVersionIsMigrationCount(t *testing.T) {
	if sqlite.SchemaVersion != sqlite.Migrations {
		t.Fatalf("SchemaVersion %d, %d migrations", sqlite.SchemaVersion, sqlite.Migrations)
	}
}

// layout describes a file's tables and indexes: every column in order with
// its type, default and constraints.
func layout(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, table := range []string{"jobs", "items", "meta"} {
		rows, err := db.Query("SELECT cid, name, type, \"notnull\", coalesce(dflt_value, ''), pk FROM pragma_table_info(?)", table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var cid, notnull, pk int
			var name, typ, dflt string
			if err := rows.Scan(&cid, &name, &typ, &notnull, &dflt, &pk); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s.%d %s %s notnull=%d default=%q pk=%d\n", table, cid, name, typ, notnull, dflt, pk)
		}
		rows.Close()
	}
	rows, err := db.Query("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "index %s on %s\n", name, table)
	}
	return b.String()
}

// A file migrated from version 1 has the very layout of a file created by
// this version: one list of migrations makes both, so no file's layout
// depends on the version it was created by.
func TestMigratedLayoutIsNewLayout(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new.db")
	s := openSQLite(t, fresh, checkpoint.Config{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "v1.db")
	rawExec(t, old, schemaV1)
	if err := os.Chmod(old, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openSQLite(t, old, checkpoint.Config{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if a, b := layout(t, fresh), layout(t, old); a != b {
		t.Fatalf("new file:\n%s\nmigrated version 1 file:\n%s", a, b)
	}
}

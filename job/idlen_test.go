package job

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
)

// One limit for an item ID: a manifest line may carry what every store
// accepts (checkpoint.MaxIDLen), no less (the manifest once stopped at 512
// bytes, the stores at 1024) and no more.
func TestManifestIDLimitIsTheStores(t *testing.T) {
	line := func(n int) []byte {
		return fmt.Appendf(nil, `{"id":%q,"url":"http://example.test/"}`, strings.Repeat("x", n))
	}
	if _, err := parseLine(line(checkpoint.MaxIDLen), ""); err != nil {
		t.Fatalf("an ID of checkpoint.MaxIDLen bytes: %v", err)
	}
	if _, err := parseLine(line(checkpoint.MaxIDLen+1), ""); err == nil {
		t.Fatal("an ID longer than checkpoint.MaxIDLen was accepted")
	}
}

package fileperm

import (
	"io/fs"
	"runtime"
	"testing"
)

func TestOwnerOnly(t *testing.T) {
	for _, c := range []struct {
		mode fs.FileMode
		unix bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true},
		{0o640, false}, {0o604, false}, {0o666, false}, {0o620, false},
	} {
		want := c.unix || runtime.GOOS == "windows"
		if got := OwnerOnly(c.mode); got != want {
			t.Errorf("OwnerOnly(%#o) = %v, want %v", c.mode, got, want)
		}
	}
}

//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair; the size (cols x rows) is set on it
// unless both are 0, which leaves it unsized, as under `script` or some CI
// runners.
func openPTY(t *testing.T, cols, rows uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty slave: %v", err)
	}
	if cols != 0 || rows != 0 {
		if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
			t.Fatalf("set pty size: %v", err)
		}
	}
	return m, s
}

// TestRunProgressBarOnTerminal runs the real CLI with its stderr on a
// pseudo-terminal, sized and unsized, and checks that the progress bar is
// drawn and redrawn in place (not plain lines): done/total, rate, ETA,
// retries and open breakers.
func TestRunProgressBarOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real CLI")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // a run of about a second: several redraws
	}))
	defer srv.Close()
	redraw := regexp.MustCompile(`\x1b\[\d+A`)
	for _, size := range []struct{ cols, rows uint16 }{{120, 30}, {0, 0}} {
		t.Run(fmt.Sprintf("%dx%d", size.cols, size.rows), func(t *testing.T) {
			dir := t.TempDir()
			var m strings.Builder
			for i := range 400 {
				fmt.Fprintf(&m, `{"id":"i%d","url":"%s/x/%d"}`+"\n", i, srv.URL, i)
			}
			if err := os.WriteFile(dir+"/items.jsonl", []byte(m.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			master, slave := openPTY(t, size.cols, size.rows)
			defer master.Close()
			cmd := exec.Command(cliBinary(t), "run", "items.jsonl", "--concurrency", "2")
			cmd.Dir = dir
			cmd.Stdout, cmd.Stderr = slave, slave
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			slave.Close() // the child has its copy; EOF (EIO) on master once it exits
			var out bytes.Buffer
			copied := make(chan struct{})
			go func() { _, _ = io.Copy(&out, master); close(copied) }()
			errc := make(chan error, 1)
			go func() { errc <- cmd.Wait() }()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("rebound run: %v\n%q", err, out.String())
				}
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatal("rebound run did not finish")
			}
			select {
			case <-copied:
			case <-time.After(10 * time.Second):
				t.Fatal("terminal output did not end")
			}
			got := out.String()
			for _, want := range []string{"items 400 / 400", "/s", " ETA ", "retries 0, open breakers 0", "400 done, 0 dead"} {
				if !strings.Contains(got, want) {
					t.Errorf("terminal output lacks %q:\n%q", want, got)
				}
			}
			if !redraw.MatchString(got) {
				t.Errorf("no in-place redraw (cursor up) in terminal output:\n%q", got)
			}
		})
	}
}

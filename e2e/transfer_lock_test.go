package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// trStartUntil starts the CLI (with --json) and returns once until accepts
// an event line; the rest of stdout is drained in the background.
func trStartUntil(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer, until func(ev map[string]any) bool) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && until(ev) {
			go io.Copy(io.Discard, stdout)
			return
		}
	}
	cmd.Wait()
	t.Fatalf("the process ended before the awaited event: %s", stderr)
}

// trRefusedByLock runs the CLI and wants exit 2 with an error naming pid.
func trRefusedByLock(t *testing.T, cmd *exec.Cmd, pid int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), fmt.Sprintf("pid %d ", pid)) {
		t.Fatalf("second process: %v, want exit 2 naming pid %d; output:\n%s", err, pid, out)
	}
}

// Two real `rebound get` processes of one file at once: the second exits 2
// naming the first's pid and touches nothing; the first saves a correct file
// (the second once truncated the .part under it: a hole of zeros, exit 0).
func TestGetTwoProcessesOneFile(t *testing.T) {
	bin := trBuildCLI(t)
	data := trData(2<<20, 11)
	release := make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:1<<20])
		w.(http.Flusher).Flush()
		if n == 1 {
			<-release
		}
		w.Write(data[1<<20:])
	}))
	defer srv.Close()
	defer close(release)
	dir, stateDir := t.TempDir(), t.TempDir()
	out := filepath.Join(dir, "f.bin")
	args := []string{"get", srv.URL + "/f.bin", "-o", out, "--state-dir", stateDir, "--sha256", trSum(data)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	first := exec.CommandContext(ctx, bin, append(args, "--json", "--progress-interval", "1ms")...)
	var stderr bytes.Buffer
	trStartUntil(t, first, &stderr, func(ev map[string]any) bool {
		done, _ := ev["done"].(float64)
		return ev["event"] == "progress" && done > 0
	})
	trRefusedByLock(t, exec.CommandContext(ctx, bin, append(args, "--start-over")...), first.Process.Pid)
	if n := requests.Load(); n != 1 {
		t.Errorf("the refused get sent a request (%d in all)", n)
	}
	release <- struct{}{}
	if err := first.Wait(); err != nil {
		t.Fatalf("first get: %v\n%s", err, stderr.String())
	}
	trCheckFile(t, out, data)
	if _, err := os.Lstat(out + ".part.lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// Two real `rebound upload` processes of one file to one tusd at once: the
// second exits 2 naming the first's pid; the first completes.
func TestUploadTwoProcessesOneFile(t *testing.T) {
	bin := trBuildCLI(t)
	data := trData(1<<20, 12)
	src := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := trStartTusd(t)
	release := make(chan struct{})
	var patches, others atomic.Int32
	ts.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch {
			others.Add(1)
		} else if patches.Add(1) == 2 {
			<-release // the first process waits in its second chunk
		}
		return false
	})
	defer close(release)
	stateDir := t.TempDir()
	args := []string{"upload", src, ts.srv.URL + "/files/", "--state-dir", stateDir, "--chunk-size", "256KiB"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	first := exec.CommandContext(ctx, bin, append(args, "--json")...)
	var stderr bytes.Buffer
	trStartUntil(t, first, &stderr, func(ev map[string]any) bool {
		done, _ := ev["done"].(float64)
		return ev["event"] == "progress" && done > 0
	})
	before := others.Load()
	trRefusedByLock(t, exec.CommandContext(ctx, bin, args...), first.Process.Pid)
	if n := others.Load() - before; n != 0 {
		t.Errorf("the refused upload sent requests (%d non-PATCH, %d PATCH in all)", n, patches.Load())
	}
	release <- struct{}{}
	if err := first.Wait(); err != nil {
		t.Fatalf("first upload: %v\n%s", err, stderr.String())
	}
	files, _ := filepath.Glob(filepath.Join(ts.dir, "*.info"))
	if len(files) != 1 {
		t.Fatalf("tusd holds %d uploads, want 1", len(files))
	}
	got, err := os.ReadFile(strings.TrimSuffix(files[0], ".info"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("tusd's file differs from the source (%v)", err)
	}
}

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// cliBinary builds the real CLI once per test binary and returns its path.
func cliBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rebound-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rebound")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/rebound")
		build.Dir = ".." // the main module, which e2e's go.mod replaces
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the CLI: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// result is a finished CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI to completion in dir, bounded by a generous timeout so

// background is a CLI run started by startCLI.
type background struct {
	cmd    *exec.Cmd
	stderr *strings.Builder // read it once exited is closed
	exited chan struct{}    // closed when the process has ended
	err    error            // Wait's error, once exited is closed
}

// startCLI starts the CLI in dir without waiting for it.
func startCLI(t *testing.T, dir string, args ...string) *background {
	t.Helper()
	b := &background{cmd: exec.Command(cliBinary(t), args...), stderr: new(strings.Builder), exited: make(chan struct{})}
	b.cmd.Dir = dir
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.exited) }()
	return b
}

// a hang fails the test instead of stalling CI.
func runCLI(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBinary(t), args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running rebound %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// Package cli holds the rebound command-line tool: one file per command, all
// wired to a cobra root here. main.go only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rebound-go/rebound/internal/redact"
)

// Exit codes shared by every command.
const (
	ExitOK          = 0   // everything done
	ExitFailed      = 1   // the work ran, but some of it failed for good
	ExitUsage       = 2   // bad flags, arguments or input; nothing was sent
	ExitInterrupted = 130 // stopped by SIGINT/SIGTERM; progress is saved
)

// exitError carries an exit code out of a command's RunE.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage or input error (exit 2).
func usageErr(err error) error { return &exitError{code: ExitUsage, err: err} }

// withCode marks err with an explicit exit code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// Main runs the CLI with args (without the program name) and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.code != ExitOK {
			fmt.Fprintln(stderr, "rebound:", redact.Text(ee.err.Error()))
		}
		return ee.code
	}
	// cobra's own flag and argument errors land here.
	fmt.Fprintln(stderr, "rebound:", redact.Text(err.Error()))
	return ExitUsage
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "rebound",
		Short: "Fault-tolerant network work: retries, breakers, timeouts, resumable jobs and transfers",
		Long: `rebound runs network work so that it survives the network.

It classifies failures (retry a reset connection or a 503, never a 401), waits
with jittered exponential backoff, bounds every call with timeouts, opens a
circuit breaker before a failing service is buried, and keeps checkpoints so
long-running work resumes after a crash without doing anything twice.

Exit codes: 0 done, 1 some work failed for good, 2 usage or input error,
130 interrupted (progress is saved; run the same command again to resume).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands lists the subcommand constructors; each command's file adds itself
// in an init func so that commands never edit each other's files.
var commands []func() *cobra.Command

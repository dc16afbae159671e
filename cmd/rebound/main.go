// Command rebound runs network work fault-tolerantly: batch jobs that resume
// after a crash, resumable downloads and uploads, and a demo of the policies.
package main

import (
	"os"

	"github.com/rebound-go/rebound/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

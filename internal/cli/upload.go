package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rebound-go/rebound/transfer"
)

func init() { commands = append(commands, newUploadCmd) }

func newUploadCmd() *cobra.Command {
	var (
		tf    transferFlags
		chunk string
		meta  []string
	)
	cmd := &cobra.Command{
		Use:   "upload FILE URL",
		Short: "Upload a file to a tus 1.0 server, resuming where an earlier run stopped",
		Long: `upload sends FILE to the tus endpoint URL (the creation URL, such as
https://host/files/) in chunks of --chunk-size.

The upload URL the server hands out is saved under a fingerprint of the file
(absolute path, size, modification time, SHA-256 of the first MiB), so running
the same command again resumes the upload: the client asks the server how much
it holds and sends only the rest. Before resuming, it reads the bytes the server
confirmed and checks them against a SHA-256 saved as they were confirmed; a
file changed there (even with its size and time kept) starts a new upload.
After a failure at most one chunk is sent again; a server that keeps losing
confirmed bytes is given up on. Checksums and termination are used when the
server offers them. A second upload of the same file to the same URL while
one runs exits 2, naming its pid.

Exit codes: 0 done, 1 failed for good, 2 usage error, 130 interrupted.
On success the upload URL is printed on stdout.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pipe, header, lockDir, err := tf.setup()
			if err != nil {
				return err
			}
			n, err := parseSize(chunk)
			if err != nil || n <= 0 {
				return usageErr(fmt.Errorf("--chunk-size %q: want a positive size such as 8MiB, 512KiB or 1048576", chunk))
			}
			md := map[string]string{}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return usageErr(fmt.Errorf("--metadata %q is not key=value", kv))
				}
				md[k] = v
			}
			prog := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), tf.jsonOut, "upload")
			prog.clean = newCleaner(args[1], header)
			res, err := transfer.Upload(cmd.Context(), args[0], args[1], transfer.UploadOptions{
				Store: store, Pipeline: pipe, Header: header, StartOver: tf.startOver,
				ChunkSize: n, Metadata: md, StallTimeout: tf.stall, OnEvent: prog.event, LockDir: lockDir})
			prog.close(err == nil)
			if err != nil {
				return transferExit(cmd.Context(), prog, "upload", err)
			}
			if tf.jsonOut {
				prog.json.Encode(jsonEvent{Event: "result", File: args[0], Done: res.Size, Total: res.Size, URL: res.URL})
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), res.URL)
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&chunk, "chunk-size", "8MiB", "bytes per PATCH request (suffixes KiB, MiB, GiB, KB, MB, GB)")
	cmd.Flags().StringArrayVar(&meta, "metadata", nil, "Upload-Metadata key=value (repeatable; filename defaults to FILE's name)")
	return cmd
}

// parseSize reads "8MiB", "512KiB", "1GB", "1048576".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > (1<<62)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

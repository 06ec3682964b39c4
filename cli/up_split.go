//go:build split

package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"calico/internal/nodebin"

	ucli "github.com/urfave/cli/v3"
)

// up runs `calico up` in the full binary embedded in this one, unpacked
// into the node's data dir (bin/), in place of this process. When the
// full binary is only to print the settings or an error (--print-config,
// arguments, not root), it runs from memory and leaves nothing on disk.
// A stop asked for while the binary is unpacked (SIGTERM, Ctrl-C) stops
// it before it runs.
func up(ctx context.Context, c *ucli.Command) error {
	s, err := resolve(c)
	if err != nil {
		return err
	}
	if c.Bool("print-config") || c.NArg() > 0 || os.Geteuid() != 0 {
		return nodebin.ExecInMemory(os.Args)
	}
	dir, err := filepath.Abs(s.get("data-dir"))
	if err != nil {
		return err
	}
	return nodebin.Exec(filepath.Join(dir, "bin"), os.Args, func() error {
		// From here a signal has its default effect, as it will have
		// until the node sets up its own handling.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		if ctx.Err() != nil {
			return errors.New("stopped by a signal before the node started")
		}
		return nil
	})
}

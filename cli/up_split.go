//go:build split

package cli

import (
	"context"
	"os"
	"path/filepath"

	"calico/internal/nodebin"

	ucli "github.com/urfave/cli/v3"
)

// up runs `calico up` in the full binary embedded in this one, unpacked
// into the node's data dir (bin/), in place of this process. When the
// full binary is only to print the settings or an error (--print-config,
// not root, a data dir that is not absolute), it runs from memory and
// leaves nothing on disk.
func up(_ context.Context, c *ucli.Command) error {
	s, err := resolve(c)
	if err != nil {
		return err
	}
	dir := s.get("data-dir")
	if c.Bool("print-config") || c.NArg() > 0 || os.Geteuid() != 0 || !filepath.IsAbs(dir) {
		return nodebin.ExecInMemory(os.Args)
	}
	return nodebin.Exec(filepath.Join(dir, "bin"), os.Args)
}

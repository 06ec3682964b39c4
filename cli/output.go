package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

// table writes aligned columns; the first row is the header.
func table(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// show is the action of a command that takes no arguments, reads one
// thing from the node's API and prints it: as JSON with -o json, otherwise
// with human.
func show[T any](path string, human func(io.Writer, T) error) ucli.ActionFunc {
	return showQuery(path, nil, human)
}

// showQuery is show with a query.
func showQuery[T any](path string, query url.Values, human func(io.Writer, T) error) ucli.ActionFunc {
	return func(ctx context.Context, c *ucli.Command) error {
		if err := noArgs(c); err != nil {
			return err
		}
		format := c.String("output")
		if err := checkFormat(format, "json"); err != nil {
			return err
		}
		var v T
		if err := api.NewClient(c.String("data-dir")).Do(ctx, "GET", path, query, nil, &v); err != nil {
			return err
		}
		if format == "json" {
			return printJSON(c.Root().Writer, v)
		}
		return human(c.Root().Writer, v)
	}
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// checkFormat accepts "" (a table) and the given formats.
func checkFormat(format string, allowed ...string) error {
	if format == "" {
		return nil
	}
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return usagef("-o %q is not one of %s", format, strings.Join(allowed, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Package cli is the command line: it parses flags into values, calls the
// package that does the work (cluster, node or the node's API) and prints
// the result. It holds no logic of its own beyond wiring `calico up`.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Version is stamped at build time with -ldflags "-X calico/cli.Version=…".
var Version = "dev"

// DefaultDataDir is where a node keeps its state unless told otherwise.
const DefaultDataDir = "/var/lib/calico"

// App is the calico command.
func App(stdout, stderr io.Writer) *ucli.App {
	return &ucli.App{
		Name:                 "calico",
		Usage:                "Calico-style routed networking and policy for a fleet of Linux hosts",
		Version:              Version,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Commands: []*ucli.Command{
			upCommand(),
			statusCommand(),
			workloadCommand(),
			applyCommand("apply", "create or update resources from a file (YAML or JSON; - for stdin)"),
			applyCommand("create", "create resources from a file; fails if any exists"),
			getCommand(),
			deleteCommand(),
			poolCommand(),
			profileCommand(),
			ipamCommand(),
			nodeCommand(),
			bgpCommand(),
			policyCommand(),
			tokenCommand(),
			leaveCommand(),
			versionCommand(),
		},
		// Errors are printed once, by Run.
		ExitErrHandler: func(*ucli.Context, error) {},
	}
}

// Run runs the calico command with args (os.Args) and returns the process
// exit code. Flags may follow positional arguments, as in
// `calico workload add web1 --profile web`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := App(stdout, stderr)
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") && args[1] != "help" && app.Command(args[1]) == nil {
		fmt.Fprintf(stderr, "calico: unknown command %q (see calico --help)\n", args[1])
		return 2
	}
	err := app.RunContext(ctx, reorder(app, args))
	if err == nil {
		return 0
	}
	msg := err.Error()
	fmt.Fprintf(stderr, "calico: %s\n", msg)
	var usage usageError
	if errors.As(err, &usage) || strings.HasPrefix(msg, "flag provided but not defined") || strings.HasPrefix(msg, "invalid value") {
		return 2
	}
	return 1
}

// usageError is wrong use of the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// reorder moves the flags of the command being run in front of its
// positional arguments, because urfave/cli stops parsing flags at the first
// positional one.
func reorder(app *ucli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds := app.Commands
	flags := app.Flags
	i := 1
	// Walk down the command names.
	for i < len(args) && !strings.HasPrefix(args[i], "-") {
		var next *ucli.Command
		for _, c := range cmds {
			if c.HasName(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		out = append(out, args[i])
		cmds, flags = next.Subcommands, next.Flags
		i++
	}
	var front, back []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			back = append(back, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			back = append(back, a)
			continue
		}
		front = append(front, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue(flags, name) && i+1 < len(args) {
			front = append(front, args[i+1])
			i++
		}
	}
	return append(append(out, front...), back...)
}

func takesValue(flags []ucli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*ucli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func dataDirFlag() ucli.Flag {
	return &ucli.StringFlag{
		Name:    "data-dir",
		Usage:   "the node's state directory",
		EnvVars: []string{"CALICO_DATA_DIR"},
		Value:   DefaultDataDir,
	}
}

func outputFlag(formats string) ucli.Flag {
	return &ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output format: " + formats}
}

func versionCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *ucli.Context) error {
			fmt.Fprintf(c.App.Writer, "calico %s\n", Version)
			return nil
		},
	}
}

// noArgs refuses positional arguments.
func noArgs(c *ucli.Context) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments (got %q)", cmdName(c), c.Args().Slice())
	}
	return nil
}

// oneArg returns the single positional argument, named what.
func oneArg(c *ucli.Context, what string) (string, error) {
	switch c.NArg() {
	case 1:
		return c.Args().First(), nil
	case 0:
		return "", usagef("%s needs %s", cmdName(c), what)
	}
	return "", usagef("%s takes one argument, %s (got %q)", cmdName(c), what, c.Args().Slice())
}

func stdinOr(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// cmdName is the command being run, as typed: "workload add".
func cmdName(c *ucli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
}

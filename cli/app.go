// Package cli is the command line: it parses flags into values, calls the
// package that does the work (cluster, node or the node's API) and prints
// the result. It holds no logic of its own beyond wiring `calico up`.
package cli

import (
	"calico/node/api"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v3"
)

// Version is stamped at build time with -ldflags "-X calico/cli.Version=…".
var Version = "dev"

// DefaultDataDir is where a node keeps its state unless told otherwise.
const DefaultDataDir = "/var/lib/calico"

// App is the calico command.
func App(stdout, stderr io.Writer) *ucli.Command {
	app := &ucli.Command{
		Name:      "calico",
		Usage:     "Calico-style routed networking and policy for a fleet of Linux hosts",
		Version:   Version,
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*ucli.Command{
			upCommand(),
			statusCommand(),
			workloadCommand(),
			installCNICommand(),
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
			datastoreCommand(),
			tokenCommand(),
			leaveCommand(),
			versionCommand(),
			checksystemCommand(),
			diagsCommand(),
		},
		// Errors are printed once, by Run.
		ExitErrHandler: func(context.Context, *ucli.Command, error) {},
	}
	usageErrors(app)
	return app
}

// usageErrors makes every command report wrong use of the command line
// as a usageError, in one line, without the help text.
func usageErrors(c *ucli.Command) {
	c.OnUsageError = func(_ context.Context, _ *ucli.Command, err error, _ bool) error {
		return usageError{err.Error()}
	}
	for _, sub := range c.Commands {
		usageErrors(sub)
	}
}

// Run runs the calico command with args (os.Args) and returns the process
// exit code: 0, or the class of the failure (README, "Exit codes"). Flags
// may follow positional arguments, as in `calico workload add web1
// --profile web`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := App(stdout, stderr)
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") && args[1] != "help" && app.Command(args[1]) == nil {
		fmt.Fprintf(stderr, "calico: unknown command %q (see calico --help)\n", args[1])
		return api.BadRequest.ExitCode()
	}
	err := app.Run(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "calico: %s\n", err)
	return exitCode(err)
}

// exitCode is the exit code of a failed command: that of its class.
func exitCode(err error) int {
	var usage usageError
	var status *api.StatusError
	switch {
	case errors.As(err, &usage):
		return api.BadRequest.ExitCode()
	case errors.As(err, &status):
		return status.Class().ExitCode()
	}
	c, _ := api.ClassOf(err)
	return c.ExitCode()
}

// usageError is wrong use of the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// dataDirFlag is the --data-dir of every command but `calico up`: from
// the flag, CALICO_DATA_DIR, or the data-dir of `calico up`'s config
// files, so that the commands find a node whose config moved its data dir.
func dataDirFlag() ucli.Flag {
	return &ucli.StringFlag{
		Name:    "data-dir",
		Usage:   "the node's state `DIR` (default: the data-dir of calico up's config file, else " + DefaultDataDir + ")",
		Sources: ucli.NewValueSourceChain(envValue("CALICO_DATA_DIR"), configDataDir{}),
		Value:   DefaultDataDir,

		HideDefault: true,
	}
}

// envValue is an environment variable as a flag's source; empty is unset.
type envValue string

func (e envValue) Lookup() (string, bool) {
	v := os.Getenv(string(e))
	return v, v != ""
}
func (e envValue) IsFromEnv() bool  { return true }
func (e envValue) Key() string      { return string(e) }
func (e envValue) String() string   { return "environment variable " + string(e) }
func (e envValue) GoString() string { return "cli.envValue(" + strconv.Quote(string(e)) + ")" }

func outputFlag(formats string) ucli.Flag {
	return &ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output format: " + formats}
}

// noArgs refuses positional arguments.
func noArgs(c *ucli.Command) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments (got %q)", cmdName(c), c.Args().Slice())
	}
	return nil
}

// oneArg returns the single positional argument, named what.
func oneArg(c *ucli.Command, what string) (string, error) {
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
func cmdName(c *ucli.Command) string {
	return strings.TrimPrefix(c.FullName(), c.Root().Name+" ")
}

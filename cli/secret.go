package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"calico/store"

	ucli "github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"
)

// maxPasswordLen is the longest TCP MD5 key the kernel takes; the node
// refuses a longer secret (bgp.MaxPasswordLen).
const maxPasswordLen = 80

func bgpSecretCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "secret",
		Usage: "BGP passwords: files on each node that BGPPeer and BGPConfiguration secretKeyRefs name",
		Commands: []*ucli.Command{{
			Name:  "set",
			Usage: "write a BGP password to this node's " + store.SecretPath("NAME", "KEY") + " from stdin",
			Description: "Reads the password from stdin (one line, at most 80 bytes; the newline is dropped; " +
				"not echoed from a terminal) and writes it to " + store.SecretPath("NAME", "KEY") +
				" with mode 0600 (its directories 0700), where the node reads it for every session whose " +
				"password is {secretKeyRef: {name: NAME, key: KEY}}. It writes this node's copy only: " +
				"run it on every node (the password is never stored in the datastore). The node takes a " +
				"changed file within seconds.",
			ArgsUsage: "NAME/KEY",
			Flags:     []ucli.Flag{dataDirFlag()},
			Action:    bgpSecretSet,
		}},
	}
}

func bgpSecretSet(_ context.Context, c *ucli.Command) error {
	arg, err := oneArg(c, "the secret's NAME/KEY")
	if err != nil {
		return err
	}
	name, key, err := parseSecretRef(arg)
	if err != nil {
		return err
	}
	pw, err := readPassword(os.Stdin, c.Root().ErrWriter)
	if err != nil {
		return err
	}
	path, err := writeSecret(store.SecretsDir, name, key, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Root().Writer, "wrote %s (mode 0600) on this node; set it on every node\n", path)
	return nil
}

// Compiled on first use, not at every process start (issue 18).
var (
	secretNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) })
	secretKeyRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-._a-zA-Z0-9]+$`) })
)

// parseSecretRef reads NAME/KEY as the store takes a secretKeyRef: a
// name that is a DNS label, a key of letters, digits, '-', '_' and '.'.
func parseSecretRef(s string) (name, key string, err error) {
	name, key, ok := strings.Cut(s, "/")
	switch {
	case !ok:
		return "", "", usagef("%q is not NAME/KEY", s)
	case len(name) > 63 || !secretNameRE().MatchString(name):
		return "", "", usagef("secret name %q must be lower-case letters, digits and '-' (at most 63)", name)
	case !secretKeyRE().MatchString(key) || key == "." || key == "..":
		return "", "", usagef("secret key %q must be letters, digits, '-', '_' and '.'", key)
	}
	return name, key, nil
}

// readPassword reads one line from in, without echo when it is a
// terminal (prompting on prompt), and checks it as the node will.
func readPassword(in *os.File, prompt io.Writer) ([]byte, error) {
	if restore, ok := noEcho(in); ok {
		fmt.Fprint(prompt, "BGP password (not echoed): ")
		defer func() { restore(); fmt.Fprintln(prompt) }()
	}
	b, err := io.ReadAll(io.LimitReader(in, maxPasswordLen+3))
	if err != nil {
		return nil, fmt.Errorf("reading the password from stdin: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	if len(line) < len(b)-1 {
		return nil, usagef("give the password on one line")
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	switch {
	case len(line) == 0:
		return nil, usagef("the password is empty")
	case len(line) > maxPasswordLen:
		return nil, usagef("the password is longer than %d bytes (the kernel's TCP MD5 limit)", maxPasswordLen)
	}
	return line, nil
}

// noEcho turns off echo on a terminal; ok is false when f is none.
func noEcho(f *os.File) (restore func(), ok bool) {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, false
	}
	quiet := *t
	quiet.Lflag &^= unix.ECHO
	if unix.IoctlSetTermios(fd, unix.TCSETS, &quiet) != nil {
		return nil, false
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, t) }, true
}

// writeSecret writes pw to dir/name/key with mode 0600, its directories
// made with mode 0700, replacing the file in one step.
func writeSecret(dir, name, key string, pw []byte) (string, error) {
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o700); err != nil {
		return "", fmt.Errorf("making %s: %w", sub, err)
	}
	path := filepath.Join(sub, key)
	tmp, err := os.CreateTemp(sub, "."+key+".*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pw)
	err = errors.Join(err, tmp.Chmod(0o600), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

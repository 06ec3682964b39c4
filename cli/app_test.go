package cli

import (
	"bytes"
	"calico/node/api"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v3"
)

// run runs the CLI in-process and returns its exit code and output.
func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"calico"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"workload", "add"}, 2, "workload add needs a workload NAME"},
		{[]string{"workload", "add", "a", "b"}, 2, "takes one argument, a workload NAME"},
		{[]string{"workload", "add", "a", "--label", "novalue"}, 2, `--label "novalue" is not key=value`},
		{[]string{"get"}, 2, "get needs KIND"},
		{[]string{"get", "pods"}, 2, `unknown resource kind "pods"`},
		{[]string{"get", "ippools", "-o", "xml"}, 2, `-o "xml" is not one of yaml, json`},
		{[]string{"status", "extra"}, 2, "status takes no arguments"},
		{[]string{"pool", "add", "10.0.0.1/16"}, 2, "has host bits set (did you mean 10.0.0.0/16?)"},
		{[]string{"ipam", "release", "--ip", "nope"}, 2, `--ip "nope" is not an address`},
		{[]string{"delete", "ippool"}, 2, "delete needs KIND and NAME"},
		{[]string{"up", "--ip", "fd00::1"}, 2, `--ip "fd00::1" is not a unicast IPv4 address`},
		{[]string{"up", "--pool", "10.0.0.0/40"}, 2, `--pool "10.0.0.0/40" is not a CIDR`},
		{[]string{"up", "--as", "x"}, 2, `--as "x" is not an AS number`},
		{[]string{"up", "--name", "Bad_Name"}, 2, `--name "Bad_Name"`},
		{[]string{"up", "--log-level", "loud"}, 2, `--log-level "loud"`},
		{[]string{"up", "--join", "10.0.0.1"}, 2, `--join needs a token`},
		{[]string{"up", "--join", "10.0.0.1", "--token", "nope"}, 2, `--token: the token is not a calico join token`},
		{[]string{"up", "--join", "10.0.0.1", "--token", "K1abc::0123456789abcdef"}, 2, `the token's CA hash is not 64 hex digits`},
		{[]string{"up", "--voter-replace-after", "0s"}, 2, `--voter-replace-after must be positive`},
		{[]string{"up", "--etcd-endpoints", "10.0.0.1:2379"}, 2, `is not an http:// or https:// URL`},
		{[]string{"up", "--etcd-ca", "/ca.crt"}, 2, `--etcd-ca goes with etcd-endpoints`},
		{[]string{"up", "--etcd-endpoints", "https://e:2379", "--etcd-cert", "/c"}, 2, `--etcd-cert needs etcd-key`},
		{[]string{"token", "extra"}, 2, `takes no arguments`},
		{[]string{"node", "rm"}, 2, `needs a node NAME`},
		{[]string{"leave", "now"}, 2, `takes no arguments`},
		{[]string{"bgp", "peer", "add", "10.0.0.1"}, 2, `needs --as`},
		{[]string{"bgp", "peer", "add", "nope", "--as", "65001"}, 2, `"nope" is not an address`},
		{[]string{"bgp", "peer", "add", "10.0.0.1", "--as", "x"}, 2, `--as "x" is not an AS number`},
		{[]string{"bgp", "peer", "rm", "x"}, 2, `"x" is not an IP address`},
		{[]string{"bgp", "peer", "add", "10.0.0.1", "--as", "65001", "--password-secret", "nope"}, 2, `--password-secret: "nope" is not NAME/KEY`},
		{[]string{"bgp", "peer", "add", "10.0.0.1", "--as", "65001", "--password", "s3cret"}, 2, `flag provided but not defined: -password`},
		{[]string{"bgp", "secret", "set"}, 2, `bgp secret set needs the secret's NAME/KEY`},
		{[]string{"bgp", "secret", "set", "Tor/key"}, 2, `secret name "Tor" must be lower-case`},
		{[]string{"policy", "stats", "a", "b"}, 2, `at most one NAME`},
		{[]string{"status"}, 5, "no calico node is running with data dir " + dir},
		{[]string{"no-such-command"}, 2, `unknown command "no-such-command"`},
	} {
		// --data-dir comes last: flags may follow the arguments.
		code, _, errs := run(append(tc.args, "--data-dir", dir)...)
		if code != tc.code || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("calico %s: exit %d, stderr %q; want exit %d and one line containing %q", strings.Join(tc.args, " "), code, errs, tc.code, tc.want)
		}
	}
}

func TestParseLabels(t *testing.T) {
	got, err := parseLabels([]string{"role=db", "tier=", "a=b=c"})
	if err != nil || got["role"] != "db" || got["tier"] != "" || got["a"] != "b=c" {
		t.Errorf("parseLabels = %v, %v", got, err)
	}
	if got, _ := parseLabels(nil); got != nil {
		t.Errorf("parseLabels(nil) = %v", got)
	}
}

func TestEveryCommandTakesDataDir(t *testing.T) {
	var walk func(path []string, cmds []*ucli.Command)
	walk = func(path []string, cmds []*ucli.Command) {
		for _, c := range cmds {
			p := append(slices.Clone(path), c.Name)
			if len(c.Commands) > 0 {
				walk(p, c.Commands)
				continue
			}
			found := false
			for _, f := range c.Flags {
				if slices.Contains(f.Names(), "data-dir") {
					found = true
				}
			}
			if !found {
				t.Errorf("calico %s has no --data-dir", strings.Join(p, " "))
			}
		}
	}
	walk(nil, App(nil, nil).Commands)
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"help", "workload"}, {"--help"}, {"workload", "add", "--help"}} {
		code, out, errs := run(args...)
		if code != 0 || !strings.Contains(out, "USAGE") {
			t.Errorf("calico %s: exit %d, stdout %q, stderr %q; want the help", strings.Join(args, " "), code, out, errs)
		}
	}
}

// TestExitCodes: each class of failure the node answers with exits with
// the code README's "Exit codes" gives it.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{&api.StatusError{Status: http.StatusInternalServerError, Msg: "x"}, 1},
		{&api.StatusError{Status: http.StatusBadRequest, Msg: "x"}, 2},
		{&api.StatusError{Status: http.StatusNotFound, Msg: "x"}, 3},
		{&api.StatusError{Status: http.StatusConflict, Msg: "x"}, 4},
		{&api.StatusError{Status: http.StatusServiceUnavailable, Msg: "x"}, 5},
		{fmt.Errorf("wrapped: %w", api.Errorf(api.NotFound, "no such pool")), 3},
		{usagef("bad flag"), 2},
		{errors.New("something else"), 1},
	} {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("exitCode(%v) = %d; want %d", tc.err, got, tc.code)
		}
	}
}

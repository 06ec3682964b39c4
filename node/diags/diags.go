// Package diags writes `calico diags`: one tar.gz with what a person
// needs to understand a node from afar (its status, log, configuration,
// firewall, routes, datastore, BGP, resources, IPAM, metrics and system
// checks), as `calicoctl node diags` does for Calico. Secrets never go in:
// the join token, private keys and BGP passwords are redacted from
// everything written.
package diags

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"calico/cluster/token"
	"calico/node/api"
	"calico/node/syscheck"
)

// Config says what to collect and where to write it.
type Config struct {
	DataDir string
	// Out is the tar.gz to write.
	Out string
	// Version is this binary's version; Settings are calico up's
	// settings from its config files as --print-config prints them (the
	// token never shown), for when the node does not say its own.
	Version, Settings string
	// LogLines is how many lines of the node's log to take.
	LogLines int
	// Secrets are strings that must not appear in the bundle (the join
	// token and its secret, the gossip key): each is redacted.
	Secrets []string
}

// A bundle is the files collected so far.
type bundle struct {
	names []string
	files map[string][]byte
	// failed says what could not be collected, and why.
	failed []string
}

func (b *bundle) add(name string, data []byte) {
	if _, ok := b.files[name]; !ok {
		b.names = append(b.names, name)
	}
	b.files[name] = data
}

func (b *bundle) fail(what string, err error) {
	b.failed = append(b.failed, fmt.Sprintf("%s: %v", what, err))
}

// Collect gathers everything and writes the tar.gz; it returns the files
// it holds. What cannot be collected (no node running, a tool missing) is
// listed in errors.txt, not fatal.
func Collect(ctx context.Context, cfg Config) ([]string, error) {
	b := &bundle{files: map[string][]byte{}}
	now := time.Now().UTC()
	host, _ := os.Hostname()
	b.add("date.txt", []byte(now.Format(time.RFC3339)+"\n"))
	b.add("hostname.txt", []byte(host+"\n"))
	b.add("config.txt", []byte(cfg.Settings))
	fromNode(ctx, b, cfg)
	fromHost(ctx, b, cfg)
	rs := syscheck.Run(ctx, syscheck.Config{DataDir: cfg.DataDir, NodeRunning: true})
	var buf bytes.Buffer
	syscheck.Print(&buf, rs)
	b.add("checksystem.txt", buf.Bytes())
	if len(b.failed) > 0 {
		b.add("errors.txt", []byte("# what could not be collected\n"+strings.Join(b.failed, "\n")+"\n"))
	}
	return b.names, write(cfg, b, strings.TrimSuffix(filepath.Base(cfg.Out), ".tar.gz"))
}

// fromNode asks the node's API.
func fromNode(ctx context.Context, b *bundle, cfg Config) {
	c := api.NewClient(cfg.DataDir)
	get := func(name, path string, q url.Values) []byte {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var raw json.RawMessage
		if err := c.Do(rctx, "GET", path, q, nil, &raw); err != nil {
			b.fail(name, err)
			return nil
		}
		var out bytes.Buffer
		json.Indent(&out, raw, "", "  ")
		out.WriteByte('\n')
		b.add(name, out.Bytes())
		return raw
	}
	var v api.VersionInfo
	version := "calico (this binary) " + cfg.Version + "\n"
	if raw := get("version.json", "/v1/version", nil); raw != nil && json.Unmarshal(raw, &v) == nil {
		version += fmt.Sprintf("node %s, data dir format %d\n", v.Version, v.DataFormat)
	}
	b.add("version.txt", []byte(version))
	var set api.Log
	if err := c.Do(ctx, "GET", "/v1/diags/settings", nil, nil, &set); err == nil && set.Text != "" {
		b.add("config.txt", []byte("# the settings the node runs with\n"+set.Text))
	}
	if raw := get("status.json", "/v1/status", nil); raw != nil {
		var st api.Status
		if json.Unmarshal(raw, &st) == nil {
			b.add("problems.txt", []byte(problemsText(st)))
		}
	}
	get("nodes.json", "/v1/nodes", nil)
	get("etcd-members.json", "/v1/diags/etcd", nil)
	get("bgp-routes.json", "/v1/bgp/routes", nil)
	get("ipam-check.json", "/v1/ipam/check", nil)
	get("ipam-blocks.json", "/v1/ipam/blocks", nil)
	get("policy-stats.json", "/v1/policy/stats", nil)
	var lg api.Log
	if err := c.Do(ctx, "GET", "/v1/diags/log", url.Values{"lines": {fmt.Sprint(cfg.LogLines)}}, nil, &lg); err == nil {
		b.add("log.txt", []byte(lg.Text))
	} else {
		journal(ctx, b, cfg.LogLines, err)
	}
	metrics(ctx, c, b)
	resources(ctx, c, b)
}

func problemsText(st api.Status) string {
	if len(st.Problems) == 0 {
		return "# no problems\n"
	}
	var s strings.Builder
	s.WriteString("# what the node had to refuse, skip or retry (calico status)\n")
	for _, p := range st.ProblemDetails {
		fmt.Fprintf(&s, "%-10s %s\n", p.Kind, api.Problem(p).Resource+": "+strings.TrimPrefix(p.Field+": ", ": ")+p.Message)
	}
	if len(st.ProblemDetails) == 0 {
		s.WriteString(strings.Join(st.Problems, "\n") + "\n")
	}
	return s.String()
}

// journal takes the log from the journal when the node runs under
// systemd (its stderr is not a file then).
func journal(ctx context.Context, b *bundle, lines int, why error) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		b.fail("log.txt", fmt.Errorf("%v; no journalctl either", why))
		return
	}
	out, err := run(ctx, "journalctl", "-u", "calico.service", "-n", fmt.Sprint(lines), "--no-pager", "-o", "short-iso")
	if err != nil || len(bytes.TrimSpace(out)) == 0 || bytes.Contains(out, []byte("-- No entries --")) {
		b.fail("log.txt", fmt.Errorf("%v; journalctl -u calico.service: %v %s", why, err, bytes.TrimSpace(out)))
		return
	}
	b.add("log.txt", out)
}

func metrics(ctx context.Context, c *api.Client, b *bundle) {
	var text string
	err := c.DoText(ctx, "/v1/diags/metrics", &text)
	if err != nil {
		b.fail("metrics.txt", err)
		return
	}
	b.add("metrics.txt", []byte(text))
}

// Secrets are the cluster's secrets that this host holds: the join token
// (whole and its secret part) and the gossip key (as bytes, hex and
// base64), for Config.Secrets.
func Secrets(dataDir string) []string {
	var out []string
	if t, err := token.Load(dataDir); err == nil {
		out = append(out, t.String(), t.Secret)
	}
	if k, err := os.ReadFile(filepath.Join(dataDir, "pki", "gossip.key")); err == nil && len(k) > 0 {
		out = append(out, string(k), hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k))
	}
	return out
}

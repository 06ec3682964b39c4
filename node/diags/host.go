package diags

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"calico/node/api"
	"calico/store"

	"go.yaml.in/yaml/v3"
)

// run runs a command with a timeout and returns its output (stdout and
// stderr).
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// commands are what diags runs on the host, by the file they go to.
var commands = []struct {
	file string
	args []string
}{
	{"nft-ruleset.txt", []string{"nft", "list", "ruleset"}},
	{"ip-link.txt", []string{"ip", "-d", "link", "show"}},
	{"ip4-addr.txt", []string{"ip", "-d", "-4", "addr", "show"}},
	{"ip6-addr.txt", []string{"ip", "-d", "-6", "addr", "show"}},
	{"ip4-route.txt", []string{"ip", "-d", "-4", "route", "show", "table", "all"}},
	{"ip6-route.txt", []string{"ip", "-d", "-6", "route", "show", "table", "all"}},
	{"ip4-rule.txt", []string{"ip", "-d", "-4", "rule", "show"}},
	{"ip6-rule.txt", []string{"ip", "-d", "-6", "rule", "show"}},
	{"ip4-neigh.txt", []string{"ip", "-d", "-4", "neigh", "show"}},
	{"ip6-neigh.txt", []string{"ip", "-d", "-6", "neigh", "show"}},
	{"sockets.txt", []string{"ss", "-tanup"}},
}

// sysctls are the ones the node depends on, and the ones of its
// workloads' interfaces (cali*).
var sysctls = []string{
	"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter",
	"net/ipv6/conf/all/disable_ipv6", "net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_count",
	"net/ipv4/conf/all/proxy_arp", "net/ipv4/neigh/default/gc_thresh3", "net/ipv6/neigh/default/gc_thresh3",
}

// fromHost runs the host's tools and reads its sysctls.
func fromHost(ctx context.Context, b *bundle, cfg Config) {
	for _, c := range commands {
		if _, err := exec.LookPath(c.args[0]); err != nil {
			b.fail(c.file, fmt.Errorf("%s is not installed", c.args[0]))
			continue
		}
		out, err := run(ctx, c.args[0], c.args[1:]...)
		if err != nil {
			b.fail(c.file, fmt.Errorf("%s: %v: %s", strings.Join(c.args, " "), err, bytes.TrimSpace(out)))
		}
		b.add(c.file, append([]byte("# "+strings.Join(c.args, " ")+"\n"), out...))
	}
	var s strings.Builder
	paths := append([]string(nil), sysctls...)
	ifaces, _ := os.ReadDir("/proc/sys/net/ipv4/conf")
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name(), "cali") || i.Name() == "eth0" {
			for _, k := range []string{"proxy_arp", "forwarding", "rp_filter"} {
				paths = append(paths, "net/ipv4/conf/"+i.Name()+"/"+k)
			}
		}
	}
	for _, p := range paths {
		v, err := os.ReadFile("/proc/sys/" + p)
		if err != nil {
			fmt.Fprintf(&s, "%s = (%v)\n", strings.ReplaceAll(p, "/", "."), err)
			continue
		}
		fmt.Fprintf(&s, "%s = %s\n", strings.ReplaceAll(p, "/", "."), strings.TrimSpace(string(v)))
	}
	b.add("sysctls.txt", []byte(s.String()))
}

// resources writes every kind's resources as YAML, BGP passwords
// redacted, one file a kind.
func resources(ctx context.Context, c *api.Client, b *bundle) {
	for _, k := range store.Kinds() {
		if k.Unsupported != "" {
			continue
		}
		var rs api.Resources
		if err := c.Do(ctx, "GET", "/v1/resources/"+k.Plural, nil, nil, &rs); err != nil {
			b.fail("resources/"+k.Plural+".yaml", err)
			continue
		}
		var out bytes.Buffer
		fmt.Fprintf(&out, "# %d %s\n", len(rs.Items), k.Name)
		for _, item := range rs.Items {
			var doc any
			if err := json.Unmarshal(item, &doc); err != nil {
				continue
			}
			y, err := yaml.Marshal(redactTree(doc))
			if err != nil {
				continue
			}
			out.WriteString("---\n")
			out.Write(y)
		}
		b.add("resources/"+k.Plural+".yaml", out.Bytes())
	}
}

// redactTree replaces every value under a key that holds a secret.
func redactTree(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch strings.ToLower(k) {
			case "password", "token", "secret", "privatekey":
				v[k] = "(redacted)"
			default:
				v[k] = redactTree(x)
			}
		}
	case []any:
		for i, x := range v {
			v[i] = redactTree(x)
		}
	}
	return v
}

// privateKey matches a PEM private key block.
var privateKey = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----`)
})

// redact removes the secrets from one file's content.
func redact(data []byte, secrets []string) []byte {
	data = privateKey().ReplaceAll(data, []byte("(private key redacted)"))
	for _, s := range secrets {
		if len(s) >= 8 {
			data = bytes.ReplaceAll(data, []byte(s), []byte("(redacted)"))
		}
	}
	return data
}

// write writes the bundle as a tar.gz under the directory dir, every
// file redacted.
func write(cfg Config, b *bundle, dir string) error {
	f, err := os.OpenFile(cfg.Out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("writing the diagnostics: %w", err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	now := time.Now()
	for _, name := range b.names {
		data := redact(b.files[name], cfg.Secrets)
		if err := tw.WriteHeader(&tar.Header{Name: dir + "/" + name, Mode: 0o600, Size: int64(len(data)), ModTime: now}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(data); err != nil {
			f.Close()
			return err
		}
	}
	err = tw.Close()
	if zerr := zw.Close(); err == nil {
		err = zerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

//go:build !split

package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"calico/cluster"
	"calico/cluster/token"
	"calico/node"
	"calico/node/docker"
	"calico/node/systemd"
	"calico/store"

	ucli "github.com/urfave/cli/v3"
)

// upConfig checks `calico up`'s settings and makes the node's config of
// them.
func upConfig(s settings) (node.Config, slog.Level, error) {
	cfg := node.Config{Config: cluster.Config{
		Name: s.get("name"), DataDir: s.get("data-dir"), Version: Version,
		Join: s.get("join"), Token: s.get("token"),
	}}
	var level slog.Level
	logLevel := func(s settings, _ *node.Config) error {
		if err := level.UnmarshalText([]byte(s.get("log-level"))); err != nil {
			return usagef("%s %q is not debug, info, warn or error", s.label("log-level"), s.get("log-level"))
		}
		return nil
	}
	// Each reads its settings into cfg, in the order their errors are
	// reported.
	for _, read := range []func(settings, *node.Config) error{
		clusterSettings, logLevel, observability, addressSettings, guestSettings, nameSetting,
	} {
		if err := read(s, &cfg); err != nil {
			return cfg, 0, err
		}
	}
	return cfg, level, nil
}

// clusterSettings checks the data dir, the cluster to join and its
// token, an external etcd and when a lost voter is replaced.
func clusterSettings(s settings, cfg *node.Config) error {
	if cfg.DataDir == "" {
		return usagef("%s is empty", s.label("data-dir"))
	}
	if cfg.Join != "" && cfg.Token == "" {
		return usagef("%s needs a token (--token, CALICO_TOKEN or token in the config file): `calico token` on a member prints it", s.label("join"))
	}
	if cfg.Join != "" {
		if _, err := token.Parse(cfg.Token); err != nil {
			return usagef("%s: %v", s.label("token"), err)
		}
	}
	if err := externalEtcd(s, &cfg.Config); err != nil {
		return err
	}
	return clusterTimes(s, &cfg.Config)
}

// addressSettings reads the host's addresses, the pools, Docker's
// plugins and the AS number.
func addressSettings(s settings, cfg *node.Config) error {
	var err error
	if cfg.IPv4, err = hostAddr(s, "ip", 4); err != nil {
		return err
	}
	if cfg.IPv6, err = hostAddr(s, "ip6", 6); err != nil {
		return err
	}
	if cfg.Pools, err = pools(s); err != nil {
		return err
	}
	if cfg.Docker, err = dockerConfig(s); err != nil {
		return err
	}
	if v := s.get("as"); v != "" {
		as, err := store.ParseASNumber(v)
		if err != nil || as == 0 {
			return usagef("%s %q is not an AS number", s.label("as"), v)
		}
		cfg.ASNumber = &as
	}
	return nil
}

// nameSetting checks the node's name, when one is given.
func nameSetting(s settings, cfg *node.Config) error {
	if cfg.Name == "" {
		return nil
	}
	n := store.KindNode.New()
	n.Meta().Name = cfg.Name
	if err := store.Validate(n); err != nil {
		return usagef("%s %q must be lower-case letters, digits, '-' and '.'", s.label("name"), cfg.Name)
	}
	return nil
}

// clusterTimes reads --voter-replace-after and --unreachable-after.
func clusterTimes(s settings, cfg *cluster.Config) error {
	d, err := time.ParseDuration(s.get("voter-replace-after"))
	if err != nil {
		return usagef("%s %q is not a duration (such as 5m or 90s)", s.label("voter-replace-after"), s.get("voter-replace-after"))
	}
	if d <= 0 {
		return usagef("%s must be positive", s.label("voter-replace-after"))
	}
	cfg.VoterReplaceAfter = d
	cfg.LivenessDetect, err = unreachableAfter(s)
	return err
}

// unreachableAfter reads --unreachable-after: the liveness check's detect
// time, negative for none.
func unreachableAfter(s settings) (time.Duration, error) {
	v := s.get("unreachable-after")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, usagef("%s %q is not a duration (such as 600ms or 1s)", s.label("unreachable-after"), v)
	case d == 0:
		return -1, nil
	case d < 200*time.Millisecond:
		return 0, usagef("%s must be 0 (off) or at least 200ms (four heartbeats)", s.label("unreachable-after"))
	}
	return d, nil
}

// observability reads the settings of the node's log, metrics and health
// endpoints.
func observability(s settings, cfg *node.Config) error {
	if f := s.get("log-format"); f != "" && f != "text" && f != "json" {
		return usagef("%s %q is not text or json", s.label("log-format"), f)
	}
	for _, name := range []string{"metrics-addr", "health-addr"} {
		if err := listenAddr(s, name); err != nil {
			return err
		}
	}
	cfg.MetricsAddr, cfg.HealthAddr = s.get("metrics-addr"), s.get("health-addr")
	return nil
}

// listenAddr checks an address to listen on: HOST:PORT or :PORT, or
// empty for none.
func listenAddr(s settings, name string) error {
	v := s.get(name)
	if v == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return usagef("%s %q is not HOST:PORT (such as :9091 or 127.0.0.1:9099)", s.label(name), v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return usagef("%s %q: the port must be a number from 1 to 65535", s.label(name), v)
	}
	if host != "" {
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil && host != "localhost" {
			return usagef("%s %q: the host must be an address (or empty for every address)", s.label(name), v)
		}
	}
	return nil
}

// domainRE is a DNS domain: dot-separated labels of letters, digits and
// '-', neither starting nor ending with '-'.
var domainRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\.?$`)
})

// guestSettings reads what the node tells the guests of attached
// interfaces: the MTU, DNS servers and domain.
func guestSettings(s settings, cfg *node.Config) error {
	if v := s.get("mtu"); v != "" {
		mtu, err := strconv.Atoi(v)
		if err != nil || mtu < 68 || mtu > 65535 {
			return usagef("%s %q is not an MTU between 68 and 65535", s.label("mtu"), v)
		}
		cfg.MTU = mtu
	}
	for _, v := range s.list("dns-server") {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
			return usagef("%s %q is not a unicast IP address", s.label("dns-server"), v)
		}
		cfg.DNSServers = append(cfg.DNSServers, a.Unmap())
	}
	if d := s.get("dns-domain"); d != "" {
		if len(d) > 253 || !domainRE().MatchString(d) {
			return usagef("%s %q is not a DNS domain", s.label("dns-domain"), d)
		}
		cfg.DNSDomain = strings.TrimSuffix(d, ".")
	}
	return nil
}

// dockerConfig reads the docker-* settings: where to serve Docker's
// plugins (nowhere with docker-plugins false) and the Engine's socket.
func dockerConfig(s settings) (docker.Config, error) {
	on, err := strconv.ParseBool(s.get("docker-plugins"))
	if err != nil {
		return docker.Config{}, usagef("%s %q is neither true nor false", s.label("docker-plugins"), s.get("docker-plugins"))
	}
	sock := s.get("docker-socket")
	if !on {
		return docker.Config{}, nil
	}
	if !filepath.IsAbs(sock) {
		return docker.Config{}, usagef("%s %q is not an absolute path", s.label("docker-socket"), sock)
	}
	return docker.Config{PluginDir: docker.DefaultPluginDir, EngineSocket: sock}, nil
}

// pools reads the pool setting: CIDRs that are valid pools and do not
// overlap.
func pools(s settings) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range s.list("pool") {
		cidr, err := store.ParseCIDR(p)
		if err != nil {
			return nil, usagef("%s %v", s.label("pool"), err)
		}
		if err := store.Validate(store.NewPool(store.PoolName(cidr), cidr)); err != nil {
			return nil, usagef("%s %s: %v", s.label("pool"), cidr, err)
		}
		for _, other := range out {
			if other.Overlaps(cidr) {
				return nil, usagef("%s %s overlaps %s", s.label("pool"), cidr, other)
			}
		}
		out = append(out, cidr)
	}
	return out, nil
}

// externalEtcd reads the etcd-* settings.
func externalEtcd(s settings, cfg *cluster.Config) error {
	cfg.EtcdCA, cfg.EtcdCert, cfg.EtcdKey = s.get("etcd-ca"), s.get("etcd-cert"), s.get("etcd-key")
	for _, v := range s.list("etcd-endpoints") {
		for _, e := range strings.Split(v, ",") {
			u, err := url.Parse(strings.TrimSpace(e))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("%s %q is not an http:// or https:// URL", s.label("etcd-endpoints"), e)
			}
			cfg.EtcdEndpoints = append(cfg.EtcdEndpoints, u.String())
		}
	}
	switch {
	case len(cfg.EtcdEndpoints) == 0 && cfg.EtcdCA+cfg.EtcdCert+cfg.EtcdKey != "":
		return usagef("%s goes with etcd-endpoints", s.label(firstSet(s, "etcd-ca", "etcd-cert", "etcd-key")))
	case cfg.EtcdCert != "" && cfg.EtcdKey == "":
		return usagef("%s needs etcd-key", s.label("etcd-cert"))
	case cfg.EtcdKey != "" && cfg.EtcdCert == "":
		return usagef("%s needs etcd-cert", s.label("etcd-key"))
	case len(cfg.EtcdEndpoints) > 0 && cfg.Join != "":
		return usagef("etcd-endpoints is for the founding host: joiners get the datastore from the cluster (%s, %s)", s.label("etcd-endpoints"), s.label("join"))
	}
	return nil
}

// firstSet is the first of names that has a value.
func firstSet(s settings, names ...string) string {
	for _, n := range names {
		if s.get(n) != "" {
			return n
		}
	}
	return names[0]
}

// hostAddr reads an --ip or --ip6 value: an address, optionally with its
// prefix length (default /32 or /128).
func hostAddr(set settings, name string, version int) (netip.Prefix, error) {
	s := set.get(name)
	if s == "" {
		return netip.Prefix{}, nil
	}
	flag := set.label(name)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, usagef("%s %q is not an address", flag, s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4() != (version == 4) || !p.Addr().IsGlobalUnicast() && !p.Addr().IsPrivate() {
		return netip.Prefix{}, usagef("%s %q is not a unicast IPv%d address", flag, s, version)
	}
	return p, nil
}

// newLogger is the node's logger: one format for every part of it.
func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// up runs this host's node in the foreground.
func up(ctx context.Context, c *ucli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	s, err := resolve(c)
	if err != nil {
		return err
	}
	cfg, level, err := upConfig(s)
	if err != nil {
		return err
	}
	if c.Bool("print-config") {
		return printConfig(c.Root().Writer, s)
	}
	lv := new(slog.LevelVar)
	lv.Set(level)
	cfg.Log = newLogger(c.Root().ErrWriter, s.get("log-format"), lv)
	if !s.vals["log-level"].set {
		cfg.LogLevel = lv // FelixConfiguration logSeverityScreen sets it
	}
	var printed strings.Builder
	printConfig(&printed, s)
	cfg.Settings = printed.String()
	if level <= slog.LevelDebug {
		cfg.EtcdLogLevel = "info"
	}
	cfg.Out = c.Root().Writer
	if n := systemd.FromEnv(); n != nil {
		cfg.Notify = n
	}
	if os.Geteuid() != 0 {
		return errors.New("calico up needs root (it programs routes and nftables)")
	}
	return node.Run(ctx, cfg)
}

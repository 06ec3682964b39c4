package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"calico/cluster"
	"calico/node"
	"calico/store"

	ucli "github.com/urfave/cli/v3"
)

func upCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "up",
		Usage: "run this host's node in the foreground (founds a cluster, or resumes the one in --data-dir)",
		Flags: []ucli.Flag{
			dataDirFlag(),
			&ucli.StringFlag{Name: "name", Usage: "the node's name (default: the host name)"},
			&ucli.StringFlag{Name: "ip", Usage: "the node's IPv4 address, with or without /len (default: the address of the interface holding the default route)"},
			&ucli.StringFlag{Name: "ip6", Usage: "the node's IPv6 address, with or without /len (default: as --ip, if there is an IPv6 default route)"},
			&ucli.StringSliceFlag{Name: "pool", Usage: "an IP pool `CIDR` to create if missing (repeatable; default when there is none: 192.168.0.0/16 and a random ULA /48)"},
			&ucli.StringFlag{Name: "as", Usage: "the node's BGP AS number"},
			&ucli.StringFlag{Name: "join", Usage: "join the cluster of the member at `ADDR[:PORT]` (join API, port 7947 by default)"},
			&ucli.StringFlag{Name: "token", Sources: ucli.EnvVars("CALICO_TOKEN"), Usage: "the cluster's join token (`calico token` on a member prints it)"},
			&ucli.StringSliceFlag{Name: "etcd-endpoints", Usage: "use this external etcd (`URLS`, comma-separated) instead of the embedded one; on the founding host only"},
			&ucli.StringFlag{Name: "etcd-ca", Usage: "the external etcd's CA certificate (PEM `FILE`)"},
			&ucli.StringFlag{Name: "etcd-cert", Usage: "a client certificate for the external etcd (PEM `FILE`)"},
			&ucli.StringFlag{Name: "etcd-key", Usage: "its key (PEM `FILE`)"},
			&ucli.DurationFlag{Name: "voter-replace-after", Value: 5 * time.Minute, Usage: "how long an etcd voter's host may be dead before a client host takes its seat"},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error; given, it wins over FelixConfiguration logSeverityScreen"},
		},
		Action: up,
	}
}

// upConfig reads and checks the flags of `calico up`.
func upConfig(c *ucli.Command) (node.Config, slog.Level, error) {
	cfg := node.Config{Config: cluster.Config{
		Name: c.String("name"), DataDir: c.String("data-dir"), Version: Version,
		Join: c.String("join"), Token: c.String("token"), VoterReplaceAfter: c.Duration("voter-replace-after"),
	}}
	if cfg.Join != "" && cfg.Token == "" {
		return cfg, 0, usagef("--join needs --token (or CALICO_TOKEN): `calico token` on a member prints it")
	}
	if cfg.Join != "" {
		if _, err := cluster.ParseToken(cfg.Token); err != nil {
			return cfg, 0, usagef("--token: %v", err)
		}
	}
	if err := externalEtcd(c, &cfg.Config); err != nil {
		return cfg, 0, err
	}
	if cfg.VoterReplaceAfter <= 0 {
		return cfg, 0, usagef("--voter-replace-after must be positive")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return cfg, 0, usagef("--log-level %q is not debug, info, warn or error", c.String("log-level"))
	}
	if err := noArgs(c); err != nil {
		return cfg, 0, err
	}
	var err error
	if cfg.IPv4, err = hostAddr(c.String("ip"), 4); err != nil {
		return cfg, 0, err
	}
	if cfg.IPv6, err = hostAddr(c.String("ip6"), 6); err != nil {
		return cfg, 0, err
	}
	for _, p := range c.StringSlice("pool") {
		cidr, err := store.ParseCIDR(p)
		if err != nil {
			return cfg, 0, usagef("--pool %v", err)
		}
		cfg.Pools = append(cfg.Pools, cidr)
	}
	if s := c.String("as"); s != "" {
		as, err := store.ParseASNumber(s)
		if err != nil || as == 0 {
			return cfg, 0, usagef("--as %q is not an AS number", s)
		}
		cfg.ASNumber = &as
	}
	if cfg.Name != "" {
		n := store.KindNode.New()
		n.Meta().Name = cfg.Name
		if err := store.Validate(n); err != nil {
			return cfg, 0, usagef("--name %q must be lower-case letters, digits, '-' and '.'", cfg.Name)
		}
	}
	return cfg, level, nil
}

// externalEtcd reads the --etcd-* flags.
func externalEtcd(c *ucli.Command, cfg *cluster.Config) error {
	cfg.EtcdCA, cfg.EtcdCert, cfg.EtcdKey = c.String("etcd-ca"), c.String("etcd-cert"), c.String("etcd-key")
	for _, v := range c.StringSlice("etcd-endpoints") {
		for _, e := range strings.Split(v, ",") {
			u, err := url.Parse(strings.TrimSpace(e))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--etcd-endpoints %q is not an http:// or https:// URL", e)
			}
			cfg.EtcdEndpoints = append(cfg.EtcdEndpoints, u.String())
		}
	}
	switch {
	case len(cfg.EtcdEndpoints) == 0 && cfg.EtcdCA+cfg.EtcdCert+cfg.EtcdKey != "":
		return usagef("--etcd-ca, --etcd-cert and --etcd-key go with --etcd-endpoints")
	case (cfg.EtcdCert == "") != (cfg.EtcdKey == ""):
		return usagef("--etcd-cert and --etcd-key go together")
	case len(cfg.EtcdEndpoints) > 0 && cfg.Join != "":
		return usagef("--etcd-endpoints is for the founding host: joiners get the datastore from the cluster")
	}
	return nil
}

// hostAddr reads an --ip or --ip6 value: an address, optionally with its
// prefix length (default /32 or /128).
func hostAddr(s string, version int) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	flag := map[int]string{4: "--ip", 6: "--ip6"}[version]
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

// up runs this host's node in the foreground.
func up(ctx context.Context, c *ucli.Command) error {
	cfg, level, err := upConfig(c)
	if err != nil {
		return err
	}
	lv := new(slog.LevelVar)
	lv.Set(level)
	cfg.Log = slog.New(slog.NewTextHandler(c.Root().ErrWriter, &slog.HandlerOptions{Level: lv}))
	if !c.IsSet("log-level") {
		cfg.LogLevel = lv // FelixConfiguration logSeverityScreen sets it
	}
	if level <= slog.LevelDebug {
		cfg.EtcdLogLevel = "info"
	}
	cfg.Out = c.Root().Writer
	if os.Geteuid() != 0 {
		return errors.New("calico up needs root (it programs routes and nftables)")
	}
	return node.Run(ctx, cfg)
}

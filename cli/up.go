package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"calico/cluster"
	"calico/nft"
	"calico/node"
	"calico/node/api"
	"calico/node/route"
	"calico/store"
	"calico/store/ipam"

	ucli "github.com/urfave/cli/v2"
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
			&ucli.StringFlag{Name: "token", EnvVars: []string{"CALICO_TOKEN"}, Usage: "the cluster's join token (`calico token` on a member prints it)"},
			&ucli.StringSliceFlag{Name: "etcd-endpoints", Usage: "use this external etcd (`URLS`, comma-separated) instead of the embedded one; on the founding host only"},
			&ucli.StringFlag{Name: "etcd-ca", Usage: "the external etcd's CA certificate (PEM `FILE`)"},
			&ucli.StringFlag{Name: "etcd-cert", Usage: "a client certificate for the external etcd (PEM `FILE`)"},
			&ucli.StringFlag{Name: "etcd-key", Usage: "its key (PEM `FILE`)"},
			&ucli.DurationFlag{Name: "voter-replace-after", Value: 5 * time.Minute, Usage: "how long an etcd voter's host may be dead before a client host takes its seat"},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Action: up,
	}
}

// upConfig reads and checks the flags of `calico up`.
func upConfig(c *ucli.Context) (cluster.Config, slog.Level, error) {
	cfg := cluster.Config{
		Name: c.String("name"), DataDir: c.String("data-dir"), Version: Version,
		Join: c.String("join"), Token: c.String("token"), VoterReplaceAfter: c.Duration("voter-replace-after"),
	}
	if cfg.Join != "" && cfg.Token == "" {
		return cfg, 0, usagef("--join needs --token (or CALICO_TOKEN): `calico token` on a member prints it")
	}
	if cfg.Join != "" {
		if _, err := cluster.ParseToken(cfg.Token); err != nil {
			return cfg, 0, usagef("--token: %v", err)
		}
	}
	if err := externalEtcd(c, &cfg); err != nil {
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
func externalEtcd(c *ucli.Context, cfg *cluster.Config) error {
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

// datastore joins the two halves of the datastore the agent reads.
type datastore struct {
	*store.Store
	ipam *ipam.IPAM
}

func (d datastore) HostBlocks(ctx context.Context, host string) ([]netip.Prefix, error) {
	return d.ipam.HostBlocks(ctx, host)
}

// up is the composition root of a node: the agent starts first, from its
// state cache, so a restarted node enforces its last state before etcd
// comes up; then the cluster (identity, etcd, registration); then the API.
func up(c *ucli.Context) error {
	cfg, level, err := upConfig(c)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	cfg.Log = log
	if level <= slog.LevelDebug {
		cfg.EtcdLogLevel = "info"
	}
	if os.Geteuid() != 0 {
		return errors.New("calico up needs root (it programs routes and nftables)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	unlock, err := cluster.LockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// Deferred in this order so that, on any return, the context is
	// cancelled first and then the goroutines are waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()

	if err := node.EnableForwarding(); err != nil {
		return err
	}
	routes, err := route.New(log)
	if err != nil {
		return fmt.Errorf("opening netlink: %w", err)
	}
	defer routes.Close()
	rules := nft.New(log)
	name := cfg.Name
	if id, known, err := cluster.LoadIdentity(cfg.DataDir); err != nil {
		return err
	} else if known {
		name = id.Name
	}
	var agent *node.Agent
	var clusterRef atomic.Pointer[cluster.Cluster]
	startAgent := func(name string) error {
		agent, err = node.NewAgent(node.Config{
			Name: name, DataDir: cfg.DataDir, Log: log,
			Speaker: node.RealSpeaker(log),
			Down: func(a netip.Addr) bool {
				c := clusterRef.Load()
				return c != nil && c.Down(a)
			},
		}, rules, routes)
		if err != nil {
			return err
		}
		wg.Go(func() {
			if err := agent.Run(ctx); err != nil {
				log.Error("agent stopped", "err", err)
			}
		})
		return nil
	}
	if name != "" {
		if err := startAgent(name); err != nil {
			return err
		}
		// A restart enforces its last state before etcd starts, so the
		// two do not compete for the CPU: the dataplane first.
		select {
		case <-agent.FirstPass():
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
	}

	cl, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	if agent == nil {
		if err := startAgent(cl.Identity.Name); err != nil {
			return err
		}
	}
	im := ipam.New(cl.Store.Client())
	agent.Connect(datastore{cl.Store, im})
	clusterRef.Store(cl)
	wg.Go(func() {
		// A host that dies loses its routes at once, not at BGP's hold timer.
		events := cl.GossipEvents()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-events:
				if !ok {
					return
				}
				agent.Kick()
			}
		}
	})

	id := cl.Identity
	var left atomic.Bool
	srv := &node.Server{
		Name: id.Name, ClusterID: id.ClusterID, Role: id.Role, Version: Version, DataDir: cfg.DataDir,
		IPv4: prefixString(id.IPv4), IPv6: prefixString(id.IPv6),
		Store: cl.Store, IPAM: im, Agent: agent, Log: log,
		Cluster: membership{cl, im}, Stop: func() { left.Store(true); cancel() },
	}
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.Serve(ctx) })

	fmt.Fprintf(c.App.Writer, "calico node %s is up: cluster %s, %s, etcd %s, API %s\n",
		id.Name, id.ClusterID, id.Role, strings.Join(cl.Store.Client().Endpoints(), ","), filepath.Join(cfg.DataDir, api.SocketName))
	if tok, err := cluster.LoadToken(cfg.DataDir); err == nil {
		fmt.Fprintf(c.App.Writer, "other hosts join with: calico up --join %s --token %s\n", id.IPv4.Addr(), tok)
	}
	select {
	case <-ctx.Done():
		if left.Load() {
			// Left the cluster: nothing of ours stays on the host.
			wg.Wait()
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			if err := errors.Join(rules.Remove(cctx), routes.Apply(nil)); err != nil {
				return fmt.Errorf("cleaning the dataplane after leaving: %w", err)
			}
			log.Info("left the cluster; removed our routes and nftables table")
			return nil
		}
		log.Info("stopping; the dataplane stays as it is")
		return nil
	case err := <-cl.Err():
		return fmt.Errorf("etcd stopped: %w", err)
	case err := <-serveErr:
		return err
	}
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"calico/store"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// Config is how `calico up` was asked to start.
type Config struct {
	// Name is the node's name; empty means the remembered one, or the
	// host name for a new node.
	Name string
	// IPv4 and IPv6 are the node's addresses with their prefix length;
	// zero means the remembered ones, or autodetection for a new node.
	IPv4, IPv6 netip.Prefix
	DataDir    string
	// Pools are IP pools to create if no pool has that CIDR yet.
	Pools []netip.Prefix
	// ASNumber, when set, is written to the node's BGP spec.
	ASNumber *store.ASNumber
	// EtcdClientPort and EtcdPeerPort default to 2379 and 2380.
	EtcdClientPort, EtcdPeerPort int
	// EtcdLogLevel is etcd's own log level (default "error").
	EtcdLogLevel string
	Log          *slog.Logger
}

// Cluster is this node's membership: its identity, the embedded etcd
// member and a datastore client.
type Cluster struct {
	Identity Identity
	Store    *store.Store
	etcd     *embed.Etcd
	client   *clientv3.Client
	member   etcdMember
}

// Start founds a one-node cluster in an empty data directory, or resumes
// the cluster the data directory belongs to. It never founds a cluster
// where there are signs of an earlier one. The caller holds the data
// directory's lock (LockDataDir).
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.EtcdClientPort == 0 {
		cfg.EtcdClientPort = 2379
	}
	if cfg.EtcdPeerPort == 0 {
		cfg.EtcdPeerPort = 2380
	}
	if cfg.EtcdLogLevel == "" {
		cfg.EtcdLogLevel = "error"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	id, known, err := LoadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if known {
		c, err = resume(ctx, cfg, id)
	} else {
		c, err = found(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LockDataDir makes sure one process at a time uses a data directory: the
// caller of Start holds the lock until it is done with the cluster.
func LockDataDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another calico is running with data dir %s", dir)
	}
	return func() { f.Close() }, nil
}

func found(ctx context.Context, cfg Config) (*Cluster, error) {
	etcdDir := filepath.Join(cfg.DataDir, "etcd")
	p := newPKI(cfg.DataDir)
	for _, leftover := range []string{etcdDir, p.dir} {
		if _, err := os.Stat(leftover); err == nil {
			return nil, fmt.Errorf("data dir %s has %s but no node identity (node.json): refusing to found a new cluster over an old one; move the data dir aside to start afresh", cfg.DataDir, filepath.Base(leftover))
		}
	}
	name, err := nodeName(cfg.Name)
	if err != nil {
		return nil, err
	}
	if err := detectAddrs(&cfg); err != nil {
		return nil, err
	}
	id := Identity{Name: name, ClusterID: randomHex(8), IPv4: cfg.IPv4, IPv6: cfg.IPv6, Role: "voter", Created: time.Now().UTC()}
	c := &Cluster{Identity: id}
	ok := false
	defer func() {
		if !ok { // leave the data dir as it was
			c.close()
			os.RemoveAll(etcdDir)
			os.RemoveAll(p.dir)
		}
	}()
	if err := p.createCA(id.ClusterID); err != nil {
		return nil, fmt.Errorf("creating the cluster CA: %w", err)
	}
	if err := p.issueNode(name, id.addrs()); err != nil {
		return nil, fmt.Errorf("issuing the node certificate: %w", err)
	}
	c.member = etcdMember{
		name: name, dataDir: etcdDir, addr: id.addr(), pki: p,
		clientPort: cfg.EtcdClientPort, peerPort: cfg.EtcdPeerPort,
		state: embed.ClusterStateFlagNew, token: id.ClusterID, logLevel: cfg.EtcdLogLevel,
	}
	c.member.initialCluster = name + "=" + c.member.peerURL()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	if err := c.register(ctx, cfg); err != nil {
		return nil, err
	}
	if err := id.save(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("saving the node identity: %w", err)
	}
	cfg.Log.Info("founded a new cluster", "cluster", id.ClusterID, "node", name, "etcd", c.member.clientURL())
	ok = true
	return c, nil
}

func resume(ctx context.Context, cfg Config, id Identity) (*Cluster, error) {
	if cfg.Name != "" && cfg.Name != id.Name {
		return nil, fmt.Errorf("data dir %s belongs to node %q, not %q", cfg.DataDir, id.Name, cfg.Name)
	}
	if cfg.IPv4.IsValid() && cfg.IPv4.Addr() != id.IPv4.Addr() {
		return nil, fmt.Errorf("node %s was started with --ip %s before; its etcd member is bound to that address, so it cannot move to %s", id.Name, id.IPv4.Addr(), cfg.IPv4.Addr())
	}
	if cfg.IPv6.IsValid() && cfg.IPv6.Addr() != id.IPv6.Addr() {
		return nil, fmt.Errorf("node %s was started with --ip6 %s before, not %s", id.Name, id.IPv6.Addr(), cfg.IPv6.Addr())
	}
	cfg.IPv4, cfg.IPv6 = id.IPv4, id.IPv6
	etcdDir := filepath.Join(cfg.DataDir, "etcd")
	if !etcdHasData(etcdDir) {
		return nil, fmt.Errorf("data dir %s holds node %q of cluster %s but no etcd data: refusing to found a new cluster over an old one", cfg.DataDir, id.Name, id.ClusterID)
	}
	p := newPKI(cfg.DataDir)
	if renewed, err := p.renewNode(id.Name, id.addrs()); err != nil {
		return nil, err
	} else if renewed {
		cfg.Log.Info("renewed the node certificate")
	}
	c := &Cluster{Identity: id}
	c.member = etcdMember{
		name: id.Name, dataDir: etcdDir, addr: id.addr(), pki: p,
		clientPort: cfg.EtcdClientPort, peerPort: cfg.EtcdPeerPort,
		state: embed.ClusterStateFlagExisting, token: id.ClusterID, logLevel: cfg.EtcdLogLevel,
	}
	if err := c.connect(ctx); err != nil {
		c.close()
		return nil, err
	}
	if err := c.register(ctx, cfg); err != nil {
		c.close()
		return nil, err
	}
	cfg.Log.Info("resumed", "cluster", id.ClusterID, "node", id.Name, "etcd", c.member.clientURL())
	return c, nil
}

// connect starts the embedded member and a client of it.
func (c *Cluster) connect(ctx context.Context) error {
	e, err := c.member.start(ctx, 60*time.Second)
	if err != nil {
		return err
	}
	c.etcd = e
	cli, err := newClient([]string{c.member.clientURL()}, c.member.pki)
	if err != nil {
		return err
	}
	c.client = cli
	c.Store = store.New(cli)
	return nil
}

// register writes this node's Node resource and the pools it was asked
// for (or Calico's default pools when there are none at all).
func (c *Cluster) register(ctx context.Context, cfg Config) error {
	if err := ensurePools(ctx, c.Store, cfg.Pools); err != nil {
		return err
	}
	node, err := store.GetOf[*store.Node](ctx, c.Store, "", c.Identity.Name)
	create := errors.Is(err, store.ErrNotFound)
	if err != nil && !create {
		return err
	}
	if create {
		node = store.KindNode.New().(*store.Node)
		node.Metadata.Name = c.Identity.Name
	}
	if node.Spec.BGP == nil {
		node.Spec.BGP = &store.NodeBGPSpec{}
	}
	b := node.Spec.BGP
	b.IPv4Address, b.IPv6Address = prefixString(c.Identity.IPv4), prefixString(c.Identity.IPv6)
	if cfg.ASNumber != nil {
		b.ASNumber = cfg.ASNumber
	}
	if create {
		err = c.Store.Create(ctx, node)
	} else {
		err = c.Store.Update(ctx, node)
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", c.Identity.Name, err)
	}
	return nil
}

// ensurePools creates the given pools that do not exist yet, or Calico's
// two default pools when none are given and none exist.
func ensurePools(ctx context.Context, s *store.Store, want []netip.Prefix) error {
	pools, err := store.ListOf[*store.IPPool](ctx, s, "")
	if err != nil {
		return err
	}
	var create []*store.IPPool
	if len(want) == 0 && len(pools) == 0 {
		create = []*store.IPPool{
			newPool("default-ipv4-ippool", netip.MustParsePrefix("192.168.0.0/16")),
			newPool("default-ipv6-ippool", randomULA()),
		}
	}
next:
	for _, cidr := range want {
		for _, p := range pools {
			if p.Spec.CIDR == cidr.String() {
				continue next
			}
		}
		create = append(create, newPool(PoolName(cidr), cidr))
	}
	for _, p := range create {
		if err := s.Create(ctx, p); err != nil {
			return fmt.Errorf("creating pool %s: %w", p.Spec.CIDR, err)
		}
	}
	return nil
}

// PoolName is the name given to a pool made from just its CIDR.
func PoolName(cidr netip.Prefix) string {
	s := strings.NewReplacer("::", "-", ":", "-", "/", "-").Replace(cidr.String())
	return "pool-" + strings.Trim(s, "-")
}

func newPool(name string, cidr netip.Prefix) *store.IPPool {
	p := store.KindIPPool.New().(*store.IPPool)
	p.Metadata.Name = name
	p.Spec.CIDR = cidr.String()
	return p
}

// randomULA is a unique local /48 (RFC 4193), as Calico picks for its
// default IPv6 pool.
func randomULA() netip.Prefix {
	var b [16]byte
	b[0] = 0xfd
	rand.Read(b[1:6])
	return netip.PrefixFrom(netip.AddrFrom16(b), 48)
}

func nodeName(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("reading the host name (give --name): %w", err)
	}
	return strings.ToLower(h), nil
}

func (id Identity) addr() netip.Addr {
	if id.IPv4.IsValid() {
		return id.IPv4.Addr()
	}
	return id.IPv6.Addr()
}

func (id Identity) addrs() []netip.Addr {
	var out []netip.Addr
	for _, p := range []netip.Prefix{id.IPv4, id.IPv6} {
		if p.IsValid() {
			out = append(out, p.Addr())
		}
	}
	return out
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Err reports a failure of the embedded etcd member after start.
func (c *Cluster) Err() <-chan error { return c.etcd.Err() }

// Close stops the member and the client. The dataplane is not touched.
func (c *Cluster) Close() { c.close() }

func (c *Cluster) close() {
	if c.client != nil {
		c.client.Close()
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
}

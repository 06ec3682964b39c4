package cluster

import (
	"calico/cluster/token"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
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
	// Join is a member's join API address (ADDR[:PORT]) and Token the
	// cluster's join token; both matter only to a node without a cluster.
	Join  string
	Token string
	// Ports: etcd client and peer (2379, 2380), gossip (7946), join API
	// (7947), the liveness check (7948/udp; negative: any free port, for
	// tests, since the others learn it from gossip).
	EtcdClientPort, EtcdPeerPort, GossipPort, JoinPort, LivenessPort int
	// LivenessDetect is how long another host may stay silent before the
	// routes via it go (see Liveness; default 600ms, in heartbeats every
	// 50ms); negative turns the check off, leaving it to gossip (about 2 s).
	LivenessDetect time.Duration
	// EtcdEndpoints, when set on the founding host, is an external etcd
	// cluster to use instead of the embedded one, with its CA and client
	// certificate and key (PEM files; all optional for http endpoints).
	// Joiners get them from the cluster.
	EtcdEndpoints             []string
	EtcdCA, EtcdCert, EtcdKey string
	// VoterReplaceAfter is how long a voter's host may be dead before its
	// seat goes to a client host (default 5m).
	VoterReplaceAfter time.Duration
	// Version is this binary's version, told to the others by gossip.
	Version string
	// EtcdLogLevel is etcd's own log level (default "error").
	EtcdLogLevel string
	// EtcdObserve, when set, is told of every unary request of the
	// node's datastore client: its gRPC method, error and duration.
	EtcdObserve func(method string, err error, took time.Duration)
	// MemberAfter, when set, holds back the start of a resuming voter's
	// member (one that reads through the other voters meanwhile) until
	// it is closed, for at most memberWait: the node closes it once its
	// dataplane is programmed, so that the member's replay of its log
	// does not compete with the first listing and load for the CPU.
	MemberAfter <-chan struct{}
	Log         *slog.Logger
}

// memberWait bounds how long MemberAfter holds a member back: when the
// other voters cannot serve the listing without this one, the member
// starts after it.
var memberWait = 2 * time.Second

func (cfg *Config) defaults() {
	for _, d := range []struct {
		p *int
		v int
	}{{&cfg.EtcdClientPort, 2379}, {&cfg.EtcdPeerPort, 2380}, {&cfg.GossipPort, 7946}, {&cfg.JoinPort, 7947}, {&cfg.LivenessPort, defaultLivenessPort}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if cfg.VoterReplaceAfter == 0 {
		cfg.VoterReplaceAfter = 5 * time.Minute
	}
	if cfg.EtcdLogLevel == "" {
		cfg.EtcdLogLevel = "error"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
}

// Cluster is this node's membership: its identity, its etcd member (on
// voters), a datastore client, gossip and the join API.
type Cluster struct {
	id      Identity
	founded bool

	cfg       Config
	log       *slog.Logger
	pki       pki
	caPEM     []byte
	token     token.Token
	gossipKey []byte
	client    *clientv3.Client
	gossip    *Gossip
	live      *Liveness // nil when turned off
	// liveScope are the addresses of the hosts the liveness check is
	// to watch (SetLivenessScope); nil: every member.
	liveScope atomic.Pointer[map[netip.Addr]bool]
	joinLn    net.Listener

	mu   sync.Mutex
	etcd *embed.Etcd    // nil on a client host
	full *DiskFullError // the member is stopped for lack of room
	// starting: a resuming voter's member is starting (startLater).
	starting bool
	member   etcdMember
	members  []*etcdserverpb.Member // as last listed
	known    known

	errc      chan error
	closeOnce sync.Once
	ctx       context.Context // the background's; cancelled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Start founds a one-node cluster in an empty data directory, joins the
// cluster of cfg.Join, or resumes the cluster the data directory belongs
// to. It never founds a cluster where there are signs of an earlier one.
// The caller holds the data directory's lock (LockDataDir).
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg.defaults()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	id, isMember, err := LoadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, log: cfg.Log, pki: newPKI(cfg.DataDir), errc: make(chan error, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	switch {
	case isMember:
		if cfg.Join != "" {
			cfg.Log.Info("this node is already a member; --join and --token are ignored", "cluster", id.ClusterID)
		}
		err = c.resume(ctx, id)
	case cfg.Join != "":
		err = c.join(ctx)
	default:
		err = c.found(ctx)
	}
	if err != nil {
		c.close()
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

// fresh checks that the data dir holds no trace of a cluster, fills in
// the node's name and addresses, and returns an undo that puts the data
// dir back as it was.
func (c *Cluster) fresh() (undo func(), err error) {
	etcdDir := filepath.Join(c.cfg.DataDir, "etcd")
	for _, leftover := range []string{etcdDir, c.pki.dir} {
		if _, err := os.Stat(leftover); err == nil {
			return nil, fmt.Errorf("data dir %s has %s but no node identity (node.json): refusing to found or join a cluster over an old one; move the data dir aside to start afresh", c.cfg.DataDir, filepath.Base(leftover))
		}
	}
	name, err := nodeName(c.cfg.Name)
	if err != nil {
		return nil, err
	}
	c.cfg.Name = name
	if err := detectAddrs(&c.cfg); err != nil {
		return nil, err
	}
	return func() {
		c.close()
		os.RemoveAll(etcdDir)
		os.RemoveAll(c.pki.dir)
		os.Remove(knownPath(c.cfg.DataDir))
	}, nil
}

func (c *Cluster) newMember(state string) etcdMember {
	return etcdMember{
		name: c.id.Name, dataDir: filepath.Join(c.cfg.DataDir, "etcd"), addr: c.id.addr(), pki: c.pki,
		clientPort: c.cfg.EtcdClientPort, peerPort: c.cfg.EtcdPeerPort,
		state: state, token: c.id.ClusterID, logLevel: c.cfg.EtcdLogLevel, log: c.cfg.Log,
	}
}

func (c *Cluster) found(ctx context.Context) error {
	undo, err := c.fresh()
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			undo()
		}
	}()
	c.id = Identity{Name: c.cfg.Name, ClusterID: randomHex(8), IPv4: c.cfg.IPv4, IPv6: c.cfg.IPv6, Role: "voter", Created: time.Now().UTC()}
	if err := c.pki.createCA(c.id.ClusterID); err != nil {
		return fmt.Errorf("creating the cluster CA: %w", err)
	}
	if err := c.pki.issueNode(c.id.Name, c.id.addrs()); err != nil {
		return fmt.Errorf("issuing the node certificate: %w", err)
	}
	tok := token.Token{Secret: randomHex(16)}
	if err := c.loadSecrets(&tok, randomBytes(32)); err != nil {
		return err
	}
	endpoints, err := c.datastore(ctx)
	if err != nil {
		return err
	}
	if err := c.connect(endpoints); err != nil {
		return err
	}
	if err := c.checkEmpty(ctx); err != nil {
		return err
	}
	if err := c.listenJoin(); err != nil {
		return err
	}
	if err := c.id.save(c.cfg.DataDir); err != nil {
		return fmt.Errorf("saving the node identity: %w", err)
	}
	c.known = known{Endpoints: endpoints}
	if err := c.known.save(c.cfg.DataDir); err != nil {
		return err
	}
	c.log.Info("founded a new cluster", "cluster", c.id.ClusterID, "node", c.id.Name, "etcd", endpoints)
	c.founded = true
	ok = true
	return c.background(nil)
}

// datastore starts the founder's embedded member, or takes in the
// external etcd it was given, and returns the etcd endpoints.
func (c *Cluster) datastore(ctx context.Context) ([]string, error) {
	if len(c.cfg.EtcdEndpoints) == 0 {
		if err := c.checkRoom(); err != nil {
			return nil, err
		}
		c.member = c.newMember(embed.ClusterStateFlagNew)
		c.member.initialCluster = c.id.Name + "=" + c.member.peerURL()
		if err := c.startMember(ctx, true); err != nil {
			return nil, err
		}
		return []string{c.member.clientURL()}, nil
	}
	c.id.Role, c.id.External = "client", true
	var files [3][]byte
	for i, path := range []string{c.cfg.EtcdCA, c.cfg.EtcdCert, c.cfg.EtcdKey} {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("the external etcd's credentials: %w", err)
		}
		files[i] = b
	}
	if err := c.pki.saveExternal(files[0], files[1], files[2]); err != nil {
		return nil, err
	}
	return c.cfg.EtcdEndpoints, nil
}

// checkEmpty makes sure a founder's datastore holds no Calico data (an
// external etcd may be shared by mistake, or hold another cluster).
func (c *Cluster) checkEmpty(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.client.Get(ctx, "/calico/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil {
		return fmt.Errorf("reading the datastore at %v: %w", c.client.Endpoints(), err)
	}
	if len(resp.Kvs) > 0 {
		return fmt.Errorf("the datastore at %v already holds Calico data (%s): join its cluster with --join and a token instead", c.client.Endpoints(), resp.Kvs[0].Key)
	}
	return nil
}

func (c *Cluster) join(ctx context.Context) error {
	seed, err := seedAddr(c.cfg.Join, c.cfg.JoinPort)
	if err != nil {
		return err
	}
	tok, err := token.Parse(c.cfg.Token)
	if err != nil {
		return fmt.Errorf("--token: %w", err)
	}
	undo, err := c.fresh()
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			undo()
		}
	}()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	resp, err := requestJoin(ctx, seed, tok, joinRequest{Name: c.cfg.Name, IPv4: c.cfg.IPv4, IPv6: c.cfg.IPv6, PublicKey: pub})
	if err != nil {
		return err
	}
	c.id = Identity{Name: c.cfg.Name, ClusterID: resp.ClusterID, IPv4: c.cfg.IPv4, IPv6: c.cfg.IPv6, Role: "client", External: resp.External, Created: time.Now().UTC()}
	if err := c.saveAdmission(resp, key, tok); err != nil {
		return err
	}
	c.log.Info("admitted to the cluster", "cluster", resp.ClusterID, "seed", seed)
	if err := c.connect(resp.Endpoints); err != nil {
		return err
	}
	c.member = c.newMember(embed.ClusterStateFlagExisting)
	if err := c.takeSeatAtJoin(ctx); err != nil {
		return err
	}
	if err := c.listenJoin(); err != nil {
		c.removeSelf(context.WithoutCancel(ctx))
		return err
	}
	c.known = known{Endpoints: resp.Endpoints, Seeds: resp.Seeds}
	c.known.save(c.cfg.DataDir)
	if err := c.id.save(c.cfg.DataDir); err != nil {
		return fmt.Errorf("saving the node identity: %w", err)
	}
	c.log.Info("joined the cluster", "cluster", resp.ClusterID, "node", c.id.Name, "role", c.id.Role)
	ok = true
	return c.background(resp.Seeds)
}

func (c *Cluster) resume(ctx context.Context, id Identity) error {
	cfg := c.cfg
	if err := id.fits(cfg); err != nil {
		return err
	}
	c.id = id
	c.member = c.newMember(embed.ClusterStateFlagExisting)
	if err := c.loadSecrets(nil, nil); err != nil {
		return err
	}
	if renewed, err := c.pki.renewNode(id.Name, id.addrs()); err != nil {
		return err
	} else if renewed {
		c.log.Info("renewed the node certificate")
	}
	c.known = loadKnown(cfg.DataDir)
	others := slices.DeleteFunc(slices.Clone(c.known.Endpoints), func(u string) bool { return u == c.member.clientURL() })
	if id.Role == "voter" {
		if !etcdHasData(c.member.dataDir) {
			return fmt.Errorf("data dir %s holds node %q of cluster %s but no etcd data: refusing to found a new cluster over an old one", cfg.DataDir, id.Name, id.ClusterID)
		}
		if c.replacedWhileAway(ctx, others) {
			c.log.Warn("this host's etcd member was replaced while it was away; it rejoins as a client")
			if err := c.demote(); err != nil {
				return err
			}
		}
	}
	endpoints := others
	later := c.id.Role == "voter" && len(others) > 0
	if c.id.Role == "voter" && !later {
		// The only voter: serve at once; the member becomes ready when
		// it has replayed its log.
		if _, err := c.startOrWait(ctx); err != nil {
			return err
		}
		endpoints = []string{c.member.clientURL()}
	}
	if len(endpoints) == 0 {
		return fmt.Errorf("node %s is an etcd client but knows no etcd endpoint (%s is missing)", id.Name, knownPath(cfg.DataDir))
	}
	if err := c.connect(endpoints); err != nil {
		return err
	}
	if err := c.listenJoin(); err != nil {
		return err
	}
	c.log.Info("resumed", "cluster", id.ClusterID, "node", id.Name, "role", c.id.Role, "etcd", endpoints)
	if later {
		c.mu.Lock()
		c.starting = true // before the background's ticks
		c.mu.Unlock()
	}
	if err := c.background(c.known.Seeds); err != nil {
		return err
	}
	if later {
		c.startLater()
	}
	return nil
}

// laterHook, when a test sets it, runs before startLater starts the
// member, with the cluster's context.
var laterHook func(context.Context)

// startLater starts a resuming voter's member in the background while
// the node reads the datastore from the other voters: the member first
// replays its log (half a second of a core, and tens of MB of
// allocation, at 1,000 endpoints a host), and a node without its state cache waited for
// that before its first listing; it still starts only once the node's
// dataplane is programmed (MemberAfter). A member that cannot start stops the
// node (Err), as it would have stopped Start.
func (c *Cluster) startLater() {
	c.wg.Go(func() {
		if laterHook != nil {
			laterHook(c.ctx)
		}
		if c.cfg.MemberAfter != nil {
			t := time.NewTimer(memberWait)
			select {
			case <-c.cfg.MemberAfter:
			case <-t.C:
				c.log.Info("starting the etcd member before the dataplane is programmed", "waited", memberWait)
			case <-c.ctx.Done():
			}
			t.Stop()
		}
		var started bool
		var err error
		if c.ctx.Err() == nil { // not closed meanwhile
			started, err = c.startOrWait(c.ctx)
		}
		c.mu.Lock()
		c.starting = false
		c.mu.Unlock()
		switch {
		case err != nil:
			if !c.closing() {
				c.fail(err)
			}
		case started:
			c.gossip.SetMeta(c.meta()) // its etcd port
		}
	})
}

// saveAdmission writes what the join API gave: the cluster CA, this
// node's certificate, the token and gossip key, and an external etcd's
// credentials.
func (c *Cluster) saveAdmission(resp joinResponse, key *ecdsa.PrivateKey, tok token.Token) error {
	if err := os.MkdirAll(c.pki.dir, 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(c.pki.caCert(), resp.CACert, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(c.pki.caKey(), resp.CAKey, 0o600); err != nil {
		return err
	}
	if err := writeKeyPair(c.pki.nodeCert(), c.pki.nodeKey(), resp.Cert, key); err != nil {
		return err
	}
	if err := c.loadSecrets(&tok, resp.GossipKey); err != nil {
		return err
	}
	return c.pki.saveExternal(resp.EtcdCA, resp.EtcdCert, resp.EtcdKey)
}

// takeSeatAtJoin makes a joiner a voter when a seat is free: a learner
// first, then its member started (the leader promotes it).
func (c *Cluster) takeSeatAtJoin(ctx context.Context) error {
	if c.id.External {
		return nil
	}
	if err := c.checkRoom(); err != nil {
		c.log.Warn(err.Error() + ": joining as a client, without an etcd member")
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	members, release, err := claimSeat(cctx, c.client, c.id.Name, c.member.peerURL())
	if err != nil {
		return fmt.Errorf("joining the etcd members: %w", err)
	}
	if members != nil {
		role := c.id.Role
		c.id.Role = "voter"
		c.member.initialCluster = initialCluster(members, c.id.Name, c.member.peerURL())
		if err := c.startMember(ctx, true); err != nil {
			// A failed seat-take never fails the join: the seat is given
			// back and the host joins as a client, which looks for a free
			// seat again later (seek). (Under load the seat's lock can
			// lapse while the member starts, and another joiner's learner
			// then makes etcd refuse this member's view of the cluster.)
			c.log.Warn("could not start an etcd member in a free seat; joining as a client", "err", err)
			c.removeSelf(context.WithoutCancel(ctx))
			os.RemoveAll(c.member.dataDir)
			c.id.Role = role
		}
	}
	release()
	if list, lerr := c.client.MemberList(ctx); lerr == nil {
		c.mu.Lock()
		c.members = list.Members // a new member is a learner until promoted
		c.mu.Unlock()
	}
	return nil
}

// replacedWhileAway asks the other members whether this host's member is
// still one of them. Unreachable members prove nothing.
func (c *Cluster) replacedWhileAway(ctx context.Context, others []string) bool {
	if len(others) == 0 {
		return false
	}
	cli, err := newClient(others, c.pki, false)
	if err != nil {
		return false
	}
	defer cli.Close()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := cli.MemberList(lctx)
	if err != nil {
		return false
	}
	for _, m := range list.Members {
		if m.Name == c.id.Name || slices.Contains(m.PeerURLs, c.member.peerURL()) {
			return false
		}
	}
	return true
}

// demote turns this host into a client after its member was removed: the
// old etcd data is kept aside, never reused.
func (c *Cluster) demote() error {
	c.mu.Lock()
	e := c.etcd
	c.etcd = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
	if err := setAside(c.member.dataDir, time.Now()); err != nil {
		return err
	}
	c.id.Role = "client"
	return c.id.save(c.cfg.DataDir)
}

// setAside moves a removed member's etcd data dir aside (DIR.removed-TIME)
// with its keyspace (member/snap/db, which `etcdutl snapshot restore`
// reads) and without its write-ahead log: the log is a preallocated 64 MB
// segment and a spare, and a host replaced again and again kept every one
// of them, until its data dir had no room for the member of its next seat.
func setAside(dir string, now time.Time) error {
	aside := dir + ".removed-" + now.UTC().Format("20060102T150405")
	if err := os.Rename(dir, aside); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("moving the old etcd data aside: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(aside, "member", "wal")); err != nil {
		return fmt.Errorf("removing the old etcd data's log: %w", err)
	}
	return nil
}

// startMember runs the embedded etcd member; wait says whether to wait
// until it serves.
func (c *Cluster) startMember(ctx context.Context, wait bool) error {
	timeout := 2 * time.Minute
	if !wait {
		timeout = 0
	}
	e, err := c.member.start(ctx, timeout)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.ctx.Err() != nil {
		// Closed while it started (startLater): shutdown took no member.
		c.mu.Unlock()
		e.Close()
		return c.ctx.Err()
	}
	c.etcd = e
	c.mu.Unlock()
	c.wg.Go(func() { c.watchMember(e) })
	return nil
}

// watchMember notices the member stopping on its own: removed from the
// cluster (the host goes on as a client) or failed (fatal).
func (c *Cluster) watchMember(e *embed.Etcd) {
	var err error
	select {
	case <-e.Server.StopNotify():
	case err = <-e.Err():
	}
	c.mu.Lock()
	mine := c.etcd == e
	c.mu.Unlock()
	if !mine || c.closing() {
		return
	}
	if c.replacedWhileAway(context.Background(), c.known.Endpoints) {
		c.log.Warn("this host's etcd member was removed from the cluster; it goes on as a client")
		if derr := c.demote(); derr != nil {
			c.fail(derr)
		}
		return
	}
	if err == nil {
		err = errors.New("the etcd member stopped")
	}
	c.fail(err)
}

func (c *Cluster) fail(err error) {
	select {
	case c.errc <- err:
	default:
	}
}

func (c *Cluster) closing() bool {
	select {
	case <-c.ctx.Done():
		return true
	default:
		return false
	}
}

// removeSelf undoes this host's learner after a failed join.
func (c *Cluster) removeSelf(ctx context.Context) {
	if c.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return
	}
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, c.member.peerURL()) {
			c.client.MemberRemove(ctx, m.ID)
		}
	}
}

// loadSecrets saves (when given) or reads the token and the gossip key,
// and reads the CA certificate.
func (c *Cluster) loadSecrets(tok *token.Token, gossipKey []byte) error {
	var err error
	if c.caPEM, err = os.ReadFile(c.pki.caCert()); err != nil {
		return err
	}
	keyPath := filepath.Join(c.pki.dir, "gossip.key")
	if tok != nil {
		tok.CAHash = token.HashCA(c.caPEM)
		if err := saveToken(*tok, c.cfg.DataDir); err != nil {
			return err
		}
		if err := writeFileAtomic(keyPath, gossipKey, 0o600); err != nil {
			return err
		}
	}
	if c.token, err = token.Load(c.cfg.DataDir); err != nil {
		return err
	}
	if c.gossipKey, err = os.ReadFile(keyPath); err != nil {
		return fmt.Errorf("reading the gossip key: %w", err)
	}
	return nil
}

// connect makes the datastore client.
func (c *Cluster) connect(endpoints []string) error {
	cli, err := newClient(endpoints, c.pki, c.id.External, observing(c.cfg.EtcdObserve)...)
	if err != nil {
		return err
	}
	c.client = cli
	return nil
}

// listenJoin opens the join API's port, so that a port in use fails the
// start rather than the background.
func (c *Cluster) listenJoin() error {
	ln, err := net.Listen("tcp", hostPort(c.id.addr(), c.cfg.JoinPort))
	if err != nil {
		return fmt.Errorf("the join API: %w", err)
	}
	c.joinLn = ln
	return nil
}

// background starts gossip, the join API and the membership loop.
func (c *Cluster) background(seeds []string) error {
	if c.cfg.LivenessDetect >= 0 {
		live, err := StartLiveness(LivenessConfig{
			Name: c.id.Name, Bind: c.id.addr(), Port: c.cfg.LivenessPort, Key: c.gossipKey,
			Detect: c.cfg.LivenessDetect, Peers: c.livePeers, Changed: c.liveChanged, Log: c.log,
		})
		if err != nil {
			return fmt.Errorf("starting the liveness check: %w", err)
		}
		c.live = live
	}
	g, err := StartGossip(GossipConfig{Meta: c.meta(), Bind: c.id.addr(), Port: c.cfg.GossipPort, Key: c.gossipKey, Log: c.log})
	if err != nil {
		if c.live != nil {
			c.live.conn.Close()
		}
		return fmt.Errorf("starting gossip: %w", err)
	}
	c.gossip = g
	if c.live != nil {
		c.wg.Go(func() { c.live.Run(c.ctx) })
	}
	c.wg.Go(func() { c.serveJoin(c.ctx, c.joinLn) })
	if len(seeds) > 0 {
		c.wg.Go(func() { g.Join(seeds) })
	}
	c.wg.Go(func() { g.Rejoin(c.ctx, 10*time.Second, c.seeds) })
	c.wg.Go(c.loop)
	c.wg.Go(c.followLoop)
	c.wg.Go(c.watchDisk)
	return nil
}

func (c *Cluster) meta() Meta {
	m := Meta{
		Name: c.id.Name, ClusterID: c.id.ClusterID, IPv4: prefixAddr(c.id.IPv4), IPv6: prefixAddr(c.id.IPv6),
		Role: c.Role(), Version: c.cfg.Version, JoinPort: c.cfg.JoinPort,
	}
	if c.embedded() != nil {
		m.EtcdPort = c.cfg.EtcdClientPort
	}
	if c.live != nil {
		m.LivePort = c.live.Port()
	}
	return m
}

// seeds are the gossip addresses of every node this one knows of.
func (c *Cluster) seeds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.known.Seeds)
}

// loop keeps the membership in step every second (every period on a
// client host of a large cluster): the member list (roles, endpoints,
// what is remembered for the next start), the leader's duties, and a
// client's bid for a free seat.
func (c *Cluster) loop() {
	kicks := c.gossip.VoterChanges()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(c.period()):
		case <-kicks:
		}
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		if err := c.tick(ctx); err != nil && c.ctx.Err() == nil {
			c.log.Debug("membership", "err", err)
		}
		cancel()
	}
}

// clientTicks is how many membership ticks a second a cluster's client
// hosts make together once they are more than that many (ClientPeriod).
// Each tick is two reads and the endpoint follower's one more: when
// every client ticked every second, 1,000 hosts asked the voters 3,000
// times a second, which on the scale benchmark's machine held etcd's
// writes to 300 ms under churn (docs/scale.md, "Membership").
const clientTicks = 50

// ClientPeriod is the mean time between a client host's membership
// ticks (and its endpoint follower's) in a cluster of hosts hosts: a
// second up to clientTicks hosts, then hosts/clientTicks seconds, so that
// the fleet's reads stay about 3 x clientTicks a second. A free seat is
// still found within about a second by one client or another, and a
// change of the voters reaches every client at once through gossip
// (Gossip.VoterChanges).
func ClientPeriod(hosts int) time.Duration {
	return max(time.Second, time.Duration(hosts)*time.Second/clientTicks)
}

// ClientWait is a random wait around ClientPeriod(hosts), between half
// and one and a half times it, so that the clients' ticks spread out; a
// second up to clientTicks hosts.
func ClientWait(hosts int) time.Duration {
	p := ClientPeriod(hosts)
	if p == time.Second {
		return p
	}
	return p/2 + mrand.N(p)
}

// period is the wait before this host's next membership tick: a second
// on a host with an etcd member (the leader's duties act on its ticks),
// ClientWait on a client.
func (c *Cluster) period() time.Duration {
	if c.embedded() != nil {
		return time.Second
	}
	return ClientWait(c.gossip.Alive())
}

func (c *Cluster) tick(ctx context.Context) error {
	list, err := c.client.MemberList(ctx, c.periodicRead()...)
	if err != nil {
		return err
	}
	k := known{Endpoints: voterURLs(list.Members), Seeds: c.gossipSeeds()}
	if c.id.External {
		k.Endpoints = c.known.Endpoints // the user's, not the external members' own
	}
	c.mu.Lock()
	roleBefore := roleOf(c.members, c.id.Name)
	c.members = list.Members
	votersChanged := !slices.Equal(k.Endpoints, c.known.Endpoints)
	changed := votersChanged || !slices.Equal(k.Seeds, c.known.Seeds)
	if changed && len(k.Endpoints) > 0 {
		c.known = k
	}
	c.mu.Unlock()
	if changed && len(k.Endpoints) > 0 {
		if votersChanged {
			// The voters are the automatic BGP route reflectors: the
			// node hears of it (GossipEvents) and takes them in at once,
			// not at its next resync.
			c.gossip.touch(c.id.Name)
		}
		if err := k.save(c.cfg.DataDir); err != nil {
			return err
		}
	}
	if roleOf(list.Members, c.id.Name) != roleBefore {
		c.gossip.SetMeta(c.meta())
	}
	switch {
	case c.embedded() != nil:
		return c.manage(ctx)
	case c.memberStarting():
	case !c.id.External:
		return c.seek(ctx)
	}
	return nil
}

// periodicRead are the options of the reads the membership loop makes
// every second: linearizable on a host with an etcd member (the leader's
// duties act on them), serializable on a client host, so that a
// thousand clients ask the voters no round of agreement each a second.
// What a client does with a stale answer is safe: it follows the voters
// a second later, and a seat is claimed under a lock from a
// linearizable list (tryClaimSeat).
func (c *Cluster) periodicRead() []clientv3.OpOption {
	if c.embedded() != nil {
		return nil
	}
	return []clientv3.OpOption{clientv3.WithSerializable()}
}

// seek takes a free seat for this client host: it becomes a learner,
// starts its member, and the leader promotes it.
func (c *Cluster) seek(ctx context.Context) error {
	if c.id.Role == "voter" {
		// Its member is stopped for lack of room, or failed to start
		// (the node stops): its seat is its own, not one to claim.
		return nil
	}
	gone, err := leaving(ctx, c.client, c.periodicRead()...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	seats := 0
	for _, m := range c.members {
		if !gone[m.Name] && (m.Name != "" || !m.IsLearner) { // see tryClaimSeat
			seats++
		}
	}
	c.mu.Unlock()
	if seats >= wantVoters {
		return nil
	}
	if m, ok := c.gossip.Member(c.id.Name); !ok || m.State != "alive" {
		return nil
	}
	if err := c.checkRoom(); err != nil {
		return nil // no seat without room for etcd's log
	}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	members, release, err := tryClaimSeat(ctx, c.client, c.id.Name, c.member.peerURL())
	if err != nil {
		return err
	}
	defer release()
	if members == nil {
		return nil
	}
	c.log.Info("taking a free seat among the etcd members")
	if _, err := os.Stat(c.member.dataDir); err == nil {
		aside := c.member.dataDir + ".old-" + time.Now().UTC().Format("20060102T150405")
		if err := os.Rename(c.member.dataDir, aside); err != nil {
			c.removeSelf(ctx)
			return err
		}
	}
	c.member.initialCluster = initialCluster(members, c.id.Name, c.member.peerURL())
	if err := c.startMember(c.ctx, true); err != nil {
		c.removeSelf(context.Background())
		os.RemoveAll(c.member.dataDir)
		return fmt.Errorf("starting the etcd member: %w", err)
	}
	c.id.Role = "voter"
	if err := c.id.save(c.cfg.DataDir); err != nil {
		return err
	}
	c.gossip.SetMeta(c.meta())
	return nil
}

func (c *Cluster) memberStarting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starting
}

func (c *Cluster) embedded() *embed.Etcd {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.etcd
}

// Role is this host's role now: voter, learner or client.
func (c *Cluster) Role() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members == nil || c.id.External {
		if c.id.Role == "voter" {
			return "voter"
		}
		return "client"
	}
	return roleOf(c.members, c.id.Name)
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

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Founded reports whether this start founded the cluster.
func (c *Cluster) Founded() bool { return c.founded }

// Identity is who this node is in the cluster.
func (c *Cluster) Identity() Identity { return c.id }

// Client is the etcd client of the datastore: the voters' (this host's
// own member first), or the external etcd's.
func (c *Cluster) Client() *clientv3.Client { return c.client }

// Err reports a failure of the embedded etcd member after start.
func (c *Cluster) Err() <-chan error { return c.errc }

// Close stops gossip, the member and the client. The dataplane is not
// touched, and the host does not leave: the others see it dead until it
// comes back.
func (c *Cluster) Close() { c.close() }

func (c *Cluster) close() { c.closeOnce.Do(c.shutdown) }

func (c *Cluster) shutdown() {
	if c.live != nil {
		c.live.Stop() // before gossip's "stopping", which takes longer to go out
	}
	c.cancel()
	if c.gossip != nil {
		c.gossip.Stop(time.Second)
	}
	if c.joinLn != nil {
		c.joinLn.Close()
	}
	c.mu.Lock()
	e := c.etcd
	c.etcd = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
	c.wg.Wait()
	if c.client != nil {
		c.client.Close()
	}
}

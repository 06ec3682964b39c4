package node

import (
	"calico/cluster/token"
	"calico/node/conntrack"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"calico/cluster"
	"calico/internal/startheap"
	"calico/nft"
	"calico/node/agent"
	"calico/node/api"
	"calico/node/dhcp"
	"calico/node/docker"
	"calico/node/localapi"
	"calico/node/route"
	"calico/node/syscheck"
	"calico/node/veth"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config is how `calico up` was asked to run the node.
type Config struct {
	// Cluster is the node's membership: name, addresses, data dir, how to
	// join, etcd and ports.
	cluster.Config
	// Pools are IP pools to create if no pool has that CIDR yet.
	Pools []netip.Prefix
	// ASNumber, when set, is written to the node's BGP spec.
	ASNumber *store.ASNumber
	// Out is where the node says it is up (a terminal, or a log).
	Out io.Writer
	// Notify, when set, is told how the node is doing: systemd's READY=1,
	// STATUS=, STOPPING=1 and watchdog pings.
	Notify Notifier
	// MetricsAddr, when set, is where the node serves Prometheus metrics
	// (/metrics); HealthAddr where it serves /liveness and /readiness.
	MetricsAddr, HealthAddr string
	// Settings are calico up's settings as --print-config prints them
	// (the token never shown), for `calico diags`.
	Settings string
	// LogLevel, when set, is the level of Log, which FelixConfiguration
	// logSeverityScreen may change (agent.Config.LogLevel).
	LogLevel *slog.LevelVar
	// Docker says where to serve Docker's network and IPAM plugins; the
	// zero value serves none.
	Docker docker.Config
	// MTU of the workload interfaces the node makes or attaches (0: the
	// kernel's, or the tap's own); DHCP and router advertisements tell
	// guests their interface's MTU.
	MTU int
	// DNSServers and DNSDomain are handed to guests by DHCP.
	DNSServers []netip.Addr
	DNSDomain  string
}

// check refuses what would fail only after the cluster was founded.
func (cfg Config) check() error {
	for i, cidr := range cfg.Pools {
		if err := store.Validate(store.NewPool(store.PoolName(cidr), cidr)); err != nil {
			return fmt.Errorf("--pool %s: %w", cidr, err)
		}
		for _, other := range cfg.Pools[:i] {
			if other.Overlaps(cidr) {
				return fmt.Errorf("--pool %s overlaps --pool %s", cidr, other)
			}
		}
	}
	return nil
}

// Run runs the node until ctx is done, it leaves the cluster, or a part
// of it fails. It starts, in order: the agent from its state cache (so a
// restarted node enforces its last state at once), the cluster (identity,
// etcd, gossip, join API), the node's registration in the datastore, and
// the local API. It stops in the opposite direction of data: the API and
// the node's own background work first, then the agent, then the cluster,
// then the drivers; the dataplane stays as it is (unless the node left).
//
// For its first seconds the node's heap asks for transparent huge pages
// (internal/startheap): the start builds most of it at once, and a huge
// page takes one page fault where 4 KiB pages take 512.
func Run(ctx context.Context, cfg Config) error {
	heap := startheap.Advise(startHeap)
	t := time.AfterFunc(startHeapFor, heap.End)
	defer func() {
		t.Stop()
		heap.End()
	}()
	if cfg.Log != nil {
		cfg.Log.Debug("heap for the start advised for huge pages", "bytes", heap.Size(), "took", heap.Took)
	}
	return run(ctx, cfg, realParts())
}

// startHeap is how much heap the start may build on huge pages, and
// startHeapFor how long: a restart of a node of 1,000 workloads and 500
// policies takes about 150 MB (its etcd member's included) within two
// seconds. Longer would let the kernel's khugepaged fill pages the
// runtime has returned.
const (
	startHeap    = 256 << 20
	startHeapFor = 15 * time.Second
)

// parts are what a node is made of beyond its own code; tests replace
// them with fakes.
type parts struct {
	// forwarding turns on IP forwarding.
	forwarding func() error
	routes     func(log *slog.Logger) (routeDriver, error)
	firewall   func(log *slog.Logger, verify bool) firewallDriver
	speaker    func(log *slog.Logger) agent.StartSpeaker
	cluster    func(ctx context.Context, cfg cluster.Config) (clusterPart, error)
	// checkSystem checks the host (syscheck) as the node starts; nil
	// checks nothing.
	checkSystem func(ctx context.Context, dataDir string) []syscheck.Result
	// dhcp, links and attach serve the guests of attached interfaces
	// (guests.go): the DHCP server, the kernel's link events and the
	// host side's treatment of an interface. Without dhcp or links the
	// node serves no guests.
	dhcp   func(dhcp.Config) dhcpServer
	links  func(ctx context.Context, fn func(linkEvent)) error
	attach func(name string, mtu int) error
}

type routeDriver interface {
	agent.Routes
	// LinkChanged says the kernel reported a change of an interface.
	LinkChanged(name string)
	// Lists says how often and how long the driver read the kernel's
	// routes (felix_route_table_list_seconds).
	Lists() (int64, time.Duration)
	Close()
}

type firewallDriver interface {
	agent.Firewall
	// Remove deletes our table (after leaving the cluster).
	Remove(ctx context.Context) error
	Close() error
}

// clusterPart is what the node uses of its cluster; *cluster.Cluster is
// one.
type clusterPart interface {
	Identity() cluster.Identity
	// Founded: this start founded the cluster.
	Founded() bool
	Client() *clientv3.Client
	Role() string
	Members(ctx context.Context) ([]cluster.MemberStatus, error)
	Down(addr netip.Addr) bool
	// SetLivenessScope names the hosts the liveness check watches (nil:
	// every member).
	SetLivenessScope(addrs []netip.Addr)
	// Voters are the etcd voters' addresses, or none with an external
	// etcd.
	Voters() []netip.Addr
	GossipEvents() <-chan cluster.Member
	Err() <-chan error
	HandOver(ctx context.Context) error
	Depart(ctx context.Context) error
	RemoveMember(ctx context.Context, name string, addr netip.Addr) error
	// GossipMembers are the hosts gossip knows, with their state.
	GossipMembers() []cluster.Member
	// ClockSkew estimates how far a member's clock is ahead of ours.
	ClockSkew(ctx context.Context, m cluster.Member) (time.Duration, error)
	// VotersDown names the etcd voters whose hosts are not alive.
	VotersDown() (down []string, voters int)
	// DiskFull says why the host's etcd member is stopped for lack of
	// room, or "".
	DiskFull() string
	Close()
}

func realParts() parts {
	p := parts{
		forwarding: veth.EnableForwarding,
		routes:     func(log *slog.Logger) (routeDriver, error) { return route.New(log) },
		firewall: func(log *slog.Logger, verify bool) firewallDriver {
			if verify {
				return nft.New(log, nft.WithVerify())
			}
			return nft.New(log)
		},
		speaker: agent.RealSpeaker,
		cluster: func(ctx context.Context, cfg cluster.Config) (clusterPart, error) {
			return cluster.Start(ctx, cfg)
		},
		checkSystem: func(ctx context.Context, dataDir string) []syscheck.Result {
			return syscheck.Run(ctx, syscheck.Config{DataDir: dataDir, NodeRunning: true})
		},
	}
	realGuestParts(&p)
	return p
}

// node is a running node: what has started so far, so that stop can undo
// exactly that.
type node struct {
	cfg   Config
	parts parts
	log   *slog.Logger

	unlock   func()
	routes   routeDriver
	firewall firewallDriver

	agent     *agent.Agent
	agentStop func()
	cluster   atomic.Pointer[clusterPart]
	store     *etcdv3.Store
	ipam      *ipam.IPAM
	workloads *workload.Service

	// background is the node's own work (registration, relaying gossip to
	// the agent), ended by bgCancel.
	background sync.WaitGroup
	bgCancel   context.CancelFunc

	api     *localapi.Server
	apiStop func() error
	apiErr  chan error
	docker  *docker.Server

	// svc tells the service manager how the node is doing.
	svc *service
	// bgCtx is the background work's context.
	bgCtx context.Context

	// obs are the metrics and health endpoints.
	obs observers

	// stopping is closed when the node must stop: it left the cluster.
	stopping chan struct{}
	stopOnce sync.Once
	left     atomic.Bool

	// guestsStop ends the DHCP server and the link watcher.
	guestsStop func()
}

func run(ctx context.Context, cfg Config, p parts) (err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if err := cfg.check(); err != nil {
		return api.Errorf(api.BadRequest, "%w", err)
	}
	n := &node{cfg: cfg, parts: p, log: cfg.Log, stopping: make(chan struct{}), apiErr: make(chan error, 1)}
	servePprof(cfg.Log)
	n.svc = startService(cfg.Notify, cfg.Log)
	defer func() {
		if serr := n.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if err := n.start(ctx); err != nil {
		return err
	}
	return n.wait(ctx)
}

// start brings the node up; on an error, stop undoes what started.
func (n *node) start(ctx context.Context) error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	unlock, err := cluster.LockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	n.unlock = unlock
	if err := checkFormat(cfg.DataDir, cfg.Version, n.log); err != nil {
		return err
	}
	if err := n.listenObservers(); err != nil {
		return err
	}
	if n.obs.metrics != nil {
		cfg.EtcdObserve = n.obs.metrics.ObserveEtcd
	}
	if err := n.parts.forwarding(); err != nil {
		return err
	}
	if n.parts.checkSystem != nil {
		go n.logSystemChecks(ctx)
	}
	if n.routes, err = n.parts.routes(n.log); err != nil {
		return fmt.Errorf("opening netlink: %w", err)
	}
	n.firewall = n.parts.firewall(n.log, verify())
	if err := n.startAgentFromCache(ctx); err != nil {
		return err
	}
	n.svc.setStatus("%s", n.clusterStep())
	if n.agent != nil {
		cfg.MemberAfter = n.agent.Programmed()
	}
	cl, err := n.parts.cluster(ctx, cfg.Config)
	if err != nil {
		return err
	}
	n.cluster.Store(&cl)
	id := cl.Identity()
	if n.agent == nil {
		if err := n.startAgent(id.Name); err != nil {
			return err
		}
	}
	n.store, n.ipam = etcdv3.New(cl.Client()), ipam.New(cl.Client())
	n.workloads = &workload.Service{Node: id.Name, DataDir: n.cfg.DataDir, Store: n.store, IPAM: n.ipam, Dataplane: n.agent, MTU: n.cfg.MTU, Log: n.log}
	n.agent.Connect(agent.FromStore(n.store, n.ipam))
	n.startBackground(ctx, cl, id)
	if err := n.serve(id); err != nil {
		return err
	}
	if err := n.startDocker(id); err != nil {
		return err
	}
	n.svc.setStatus("serving the API; programming the dataplane")
	n.obs.parts.Store(&observed{agent: n.agent, cluster: cl, store: n.store, ipam: n.ipam, name: id.Name})
	n.background.Go(func() { n.readyLoop(n.bgCtx, cl, id) })
	n.background.Go(func() { n.watchLoop(n.bgCtx) })
	n.banner(cl, id)
	return nil
}

// startAgentFromCache starts the agent of a node that has run here before,
// before the cluster: a restart enforces its last state at once, and
// before etcd starts, so that the two do not compete for the CPU.
func (n *node) startAgentFromCache(ctx context.Context) error {
	id, known, err := cluster.LoadIdentity(n.cfg.DataDir)
	if err != nil || !known {
		return err
	}
	n.svc.setStatus("programming the dataplane from the state cache")
	if err := n.startAgent(id.Name); err != nil {
		return err
	}
	select {
	case <-n.agent.FirstPass():
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	return nil
}

func (n *node) startAgent(name string) error {
	a, err := agent.New(agent.Config{
		Name: name, DataDir: n.cfg.DataDir, Version: n.cfg.Version, Log: n.log, LogLevel: n.cfg.LogLevel, Verify: verify(),
		Speaker: n.parts.speaker(n.log),
		Down: func(addr netip.Addr) bool {
			c := n.cluster.Load()
			return c != nil && (*c).Down(addr)
		},
		Watch: func(addrs []netip.Addr) {
			if c := n.cluster.Load(); c != nil {
				(*c).SetLivenessScope(addrs)
			}
		},
		Interfaces: upInterfaces,
		Forget:     new(conntrack.Table).Forget, // its socket lives as long as the process
		Observe:    n.observePass,
		Voters: func() []netip.Addr {
			if c := n.cluster.Load(); c != nil {
				return (*c).Voters()
			}
			return cluster.KnownVoters(n.cfg.DataDir)
		},
	}, n.firewall, n.routes)
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(actx); err != nil {
			n.log.Error("agent stopped", "err", err)
		}
	}()
	n.agent, n.agentStop = a, func() { cancel(); <-done }
	n.svc.watch("the agent's loop", a.Alive)
	n.startGuests(name)
	return nil
}

// startBackground starts the node's own work: registering the node in
// the datastore, and telling the agent when gossip sees a host change (a
// host that dies loses its routes at once, not at BGP's hold timer).
func (n *node) startBackground(ctx context.Context, cl clusterPart, id cluster.Identity) {
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.bgCtx, n.bgCancel = bctx, cancel
	n.background.Go(func() { n.registerLoop(bctx, id) })
	n.background.Go(func() {
		events := cl.GossipEvents()
		for {
			select {
			case <-bctx.Done():
				return
			case _, ok := <-events:
				if !ok {
					return
				}
				n.agent.Kick()
			}
		}
	})
}

// registerLoop writes the node's Node and the pools it was asked for,
// then finishes or undoes the workload changes a previous run left half
// done, once the datastore answers (it may be waiting for the other
// voters).
func (n *node) registerLoop(ctx context.Context, id cluster.Identity) {
	for _, step := range []struct {
		what string
		do   func(context.Context) error
	}{
		{"register the node", func(ctx context.Context) error { return n.register(ctx, id) }},
		{"reconcile the workloads", n.workloads.Reconcile},
	} {
		for {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := step.do(sctx)
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			n.log.Info("waiting for the datastore to "+step.what, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (n *node) register(ctx context.Context, id cluster.Identity) error {
	if err := etcdv3.EnsureInitialized(ctx, n.store); err != nil {
		return err
	}
	if err := etcdv3.EnsurePools(ctx, n.store, n.cfg.Pools); err != nil {
		return err
	}
	return etcdv3.RegisterNode(ctx, n.store, id.Name, id.IPv4, id.IPv6, n.cfg.ASNumber)
}

// serve opens the local API.
func (n *node) serve(id cluster.Identity) error {
	cl := *n.cluster.Load()
	wl := n.workloads
	n.api = &localapi.Server{
		Info: localapi.Info{
			Name: id.Name, ClusterID: id.ClusterID, Role: id.Role, Version: n.cfg.Version, DataDir: n.cfg.DataDir, DataFormat: DataFormat,
			ClientFiles: clientFiles(n.cfg.DataDir, id.External),
			IPv4:        prefixString(id.IPv4), IPv6: prefixString(id.IPv6),
		},
		Store: n.store, IPAM: n.ipam, Agent: n.agent, Workloads: wl,
		Members: &members{cluster: cl, store: n.store, ipam: n.ipam, workloads: wl, name: id.Name},
		Stop:    func() { n.left.Store(true); n.stopOnce.Do(func() { close(n.stopping) }) },
		Log:     n.log,
		Health:  n.health,
		Diags:   n.diagnostics(cl),
	}
	if m := n.obs.metrics; m != nil {
		n.api.Observe = func(route string, code int, client string, took time.Duration) {
			m.ObserveRequest(route, code, client, took)
		}
	}
	if err := n.api.Listen(); err != nil {
		return err
	}
	n.apiStop = n.api.Shutdown
	go func() { n.apiErr <- n.api.Serve() }()
	client := api.NewClient(n.cfg.DataDir)
	n.svc.watch("the local API", func(ctx context.Context) error {
		var v api.VersionInfo
		return client.Do(ctx, "GET", "/v1/version", nil, nil, &v)
	})
	return nil
}

// banner says the node is up. A founding node says how others join: with
// the token when it speaks to a terminal, which is never a log file.
func (n *node) banner(cl clusterPart, id cluster.Identity) {
	fmt.Fprintf(n.cfg.Out, "calico node %s is up: cluster %s, %s, etcd %s, API %s\n",
		id.Name, id.ClusterID, cl.Role(), strings.Join(cl.Client().Endpoints(), ","), filepath.Join(n.cfg.DataDir, api.SocketName))
	if !cl.Founded() {
		return
	}
	tok := "$(calico token)"
	if isTerminal(n.cfg.Out) {
		if t, err := token.Load(n.cfg.DataDir); err == nil {
			tok = t.String()
		}
	}
	fmt.Fprintf(n.cfg.Out, "other hosts join with: calico up --join %s --token %s\n", id.IPv4.Addr(), tok)
	if tok == "$(calico token)" {
		fmt.Fprintf(n.cfg.Out, "(`calico token` on this host prints the token)\n")
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// wait runs until the node must stop.
func (n *node) wait(ctx context.Context) error {
	cl := *n.cluster.Load()
	select {
	case <-ctx.Done():
		n.log.Info("stopping; the dataplane stays as it is")
		return nil
	case <-n.stopping:
		return nil
	case err := <-cl.Err():
		return fmt.Errorf("etcd stopped: %w", err)
	case err := <-n.apiErr:
		return err
	}
}

// stop undoes what start did, producers before what they feed: the API,
// the node's background work, the agent, then the cluster and the
// drivers. A node that left the cluster also removes its dataplane.
func (n *node) stop() error {
	if n.left.Load() {
		n.svc.stopping("left the cluster; removing the dataplane and stopping")
	} else {
		n.svc.stopping("stopping; the dataplane stays as it is")
	}
	n.obs.stopping.Store(true)
	var errs []error
	if n.apiStop != nil {
		errs = append(errs, n.apiStop())
	}
	n.stopDocker()
	if n.workloads != nil {
		n.workloads.Wait() // interfaces of removed CNI attachments
	}
	if n.bgCancel != nil {
		n.bgCancel()
		n.background.Wait()
	}
	if n.guestsStop != nil {
		n.guestsStop()
	}
	if n.agentStop != nil {
		n.agentStop()
	}
	if n.left.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := errors.Join(n.firewall.Remove(ctx), n.routes.Apply(nil)); err != nil {
			errs = append(errs, fmt.Errorf("cleaning the dataplane after leaving: %w", err))
		} else {
			n.log.Info("left the cluster; removed our routes and nftables table")
		}
	}
	if c := n.cluster.Load(); c != nil {
		(*c).Close()
	}
	if n.routes != nil {
		n.routes.Close()
	}
	if n.firewall != nil {
		n.firewall.Close()
	}
	n.closeObservers()
	if n.unlock != nil {
		n.unlock()
	}
	return errors.Join(errs...)
}

// verify says whether the node checks its memoised calculation and
// rendering against fresh ones on every change: CALICO_VERIFY=1, which
// the e2e tests set.
func verify() bool { return os.Getenv("CALICO_VERIFY") == "1" }

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func clientFiles(dataDir string, external bool) [3]string {
	ca, cert, key := cluster.ClientFiles(dataDir, external)
	return [3]string{ca, cert, key}
}

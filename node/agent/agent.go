package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"calico/bgp"
	"calico/nft"
	"calico/node/calc"
	"calico/node/route"
	"calico/store/etcdv3"
	"calico/store/ipam"

	"github.com/vishvananda/netlink"
)

// Config is the agent's configuration.
type Config struct {
	// Name is this node's name.
	Name    string
	DataDir string
	// Version is the binary's: the state cache a release wrote whole is
	// loaded by the same release without checking its values again.
	Version string
	// Resync is how often the agent re-reads the kernel and repairs drift
	// even when nothing changed (default 5s, jittered).
	Resync time.Duration
	// Speaker starts the BGP speaker; nil runs none.
	Speaker StartSpeaker
	// Down reports whether a host address belongs to a host that gossip
	// has declared dead: routes via it are dropped at once.
	Down func(netip.Addr) bool
	// Watch, when set, is told after every pass the addresses of the
	// hosts whose Down verdict this host's sessions and routes depend
	// on (livenessScope), nil while BGP is not running.
	Watch func([]netip.Addr)
	// Verify computes every pass afresh as well as with the calculation's
	// memory, and logs an error and uses the fresh result when the two
	// differ (a check for tests; CALICO_VERIFY=1).
	Verify bool
	// Forget deletes the conntrack entries of addresses that left a
	// workload (conntrack.Forget); nil forgets nothing.
	Forget func([]netip.Addr) error
	// Interfaces lists this host's interfaces and their addresses, for
	// host endpoints given by expectedIPs; nil lists none.
	Interfaces func() map[string][]netip.Addr
	// Observe, when set, is called by the loop after every pass that
	// programmed the dataplane (the node's metrics); it must not block.
	Observe func(Applied)
	// Voters lists the addresses of the cluster's etcd voters (the
	// automatic BGP route reflectors); nil lists none.
	Voters func() []netip.Addr
	Log    *slog.Logger
	// LogLevel, when set, is Log's level: FelixConfiguration
	// logSeverityScreen (node.<name> over default) sets it, and without
	// one it is what it was when the agent started. Nil leaves the level
	// alone (`calico up --log-level` was given).
	LogLevel *slog.LevelVar
}

// HostInterfaces lists the interfaces of the host (of the network
// namespace the node runs in) and their addresses, but loopback and the
// workloads' (the calculation ignores them). It reads the addresses in
// one netlink dump: one dump per interface (net.Interface.Addrs, which
// reads every address each time) cost a host of 1,000 workloads a tenth
// of a core at every resync.
func HostInterfaces() map[string][]netip.Addr {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	names := make(map[int]string, len(ifs))
	out := map[string][]netip.Addr{}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, nft.IfacePrefix) {
			continue
		}
		names[i.Index] = i.Name
		out[i.Name] = nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return out
	}
	for _, a := range addrs {
		name, ok := names[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out[name] = append(out[name], ip.Unmap())
		}
	}
	return out
}

// Firewall programs the host's nftables table and reads its rule
// counters; *nft.Applier and *nft.Fake are one.
type Firewall interface {
	Apply(ctx context.Context, rs nft.Ruleset) error
	Counters(ctx context.Context) ([]nft.Counter, error)
}

// Routes programs the host's routes of our protocol and reads them back;
// *route.Table and *route.Fake are one.
type Routes interface {
	Apply(want []route.Route) error
	Current() ([]route.Route, error)
}

// Datastore is what the agent reads: the resources and the host's blocks.
type Datastore interface {
	Sync(ctx context.Context, fn func(etcdv3.SyncEvent)) error
	HostBlocks(ctx context.Context, host string) ([]netip.Prefix, error)
	// BlockClaims counts the address blocks this host's IPAM claimed
	// (ipam.IPAM.Claims): after it changed, a pass reads this host's
	// blocks first.
	BlockClaims() uint64
}

// Agent keeps this host's dataplane equal to what the datastore says.
type Agent struct {
	// owners are the interface each local workload address was on, as
	// last programmed (forgetMoved).
	owners map[netip.Addr]string
	cfg    Config
	log    *slog.Logger
	cache  *cache
	nft    Firewall
	routes Routes
	dsc    chan Datastore
	bgp    *bgpDriver
	// stale are the learned routes the kernel held when the agent started,
	// kept until the speaker has caught up (restart without a gap);
	// listed is the listing of the kernel's routes New starts, beside the
	// state cache's load; the first pass takes it when it comes to the
	// routes.
	stale      []route.Route
	staleUntil time.Time
	staleTaken bool // the listing is taken (keepStaleRoutes)
	listed     chan []route.Route
	// primed is closed when New's read of the kernel's table is done.
	primed chan struct{}

	// kick wakes the loop for a local change; changed for a change in
	// the datastore.
	kick, changed chan struct{}
	// save asks the saver for a save of the state cache.
	save chan struct{}
	// blocksStale asks the next pass to read this host's blocks (the
	// last read failed); blocksRead is when they were last read (Unix
	// ns, 0: never), and claimsRead BlockClaims then. blocksReading
	// takes the reads (the loop's and blockReader's) one at a time.
	blocksStale   atomic.Bool
	blocksRead    atomic.Int64
	claimsRead    atomic.Uint64
	blocksReading sync.Mutex
	// appliedGen is the cache's generation the last pass that succeeded
	// computed from (used by the loop alone).
	appliedGen uint64
	// calc remembers the last calculation (used by the loop alone).
	calc calc.Calculator
	// programmed is closed after the first apply that programmed this
	// host's own state from a complete copy of the datastore.
	programmed     chan struct{}
	programmedOnce sync.Once
	firstProgram   Applied // the apply that closed programmed
	// ping carries liveness probes to the loop, which answers each by
	// closing it.
	ping chan chan struct{}

	mu       sync.Mutex
	ds       Datastore
	last     Applied
	applied  int64         // cache revision of the last successful apply
	progress chan struct{} // closed and replaced after every apply
	// first is closed after the first pass of the loop: the state cache
	// (if any) is enforced, or there was nothing to enforce.
	first     chan struct{}
	firstOnce sync.Once
	problems  *problems
	// advertised and installed are BGP's side of the last apply.
	advertised []netip.Prefix
	installed  []route.Route
	// startLevel is cfg.LogLevel's level when the agent started.
	startLevel slog.Level
	// listedAt is when the datastore's last listing arrived, until a
	// pass has programmed it (and logged how long that took).
	listedAt time.Time
}

// Applied is the outcome of the agent's last programming of the host.
type Applied struct {
	At        time.Time
	Took      time.Duration
	Revision  int64
	Err       error
	Endpoints int
	Policies  int
	Sets      int
	Routes    int
	// OwnOK: this host's own part of the dataplane (its firewall, its
	// workloads' routes and blocks) is as the datastore says; a route
	// learned by BGP that cannot be programmed does not count.
	OwnOK bool
	// HostEndpoints are the host endpoints of this host under policy.
	HostEndpoints int
	FromSnapshot  bool
	// Problems are what this pass could not use or program (the data the
	// node cannot use as written, and what it does instead: it fails
	// closed; routes that wait or were refused).
	Problems []Problem
	// CalcTook, NftTook, BGPTook and RoutesTook split Took: the
	// calculation, the nftables transaction, BGP's update and the routes.
	CalcTook, NftTook, BGPTook, RoutesTook time.Duration
	// Firewall is what the nftables driver reports of the pass, when it
	// reports anything (*nft.Applier does).
	Firewall *nft.Report
}

// New opens the agent's state cache. The drivers are given so tests can
// use fakes.
func New(cfg Config, rules Firewall, routes Routes) (*Agent, error) {
	if cfg.Resync == 0 {
		cfg.Resync = 5 * time.Second
	}
	listed := make(chan []route.Route, 1)
	go func() {
		var rs []route.Route
		if cfg.Speaker != nil {
			rs, _ = routes.Current() // none kept on an error
		}
		listed <- rs
		close(listed) // a second Run finds none
	}()
	primed := make(chan struct{})
	go func() {
		defer close(primed)
		// The kernel's table too, beside the cache's load: a restart's
		// first pass then need not read it back. An error only leaves
		// that to the first pass.
		if p, ok := rules.(interface{ Prime(context.Context) error }); ok {
			p.Prime(context.Background())
		}
	}()
	opened := time.Now()
	c, err := openCache(filepath.Join(cfg.DataDir, "state.db"), cfg.Version, cfg.Log)
	if err != nil {
		<-listed
		<-primed
		return nil, err
	}
	cfg.Log.Debug("state cache opened", "component", "agent", "resources", c.items.len(), "took", time.Since(opened))
	var startLevel slog.Level
	if cfg.LogLevel != nil {
		startLevel = cfg.LogLevel.Level()
	}
	return &Agent{
		startLevel: startLevel,
		cfg:        cfg,
		log:        cfg.Log.With("component", "agent"),
		cache:      c,
		nft:        rules,
		routes:     routes,
		listed:     listed,
		primed:     primed,
		dsc:        make(chan Datastore, 1),
		bgp:        newBGPDriver(cfg.Speaker, cfg.Log),
		kick:       make(chan struct{}, 1),
		changed:    make(chan struct{}, 1),
		save:       make(chan struct{}, 1),
		progress:   make(chan struct{}),
		first:      make(chan struct{}),

		programmed: make(chan struct{}),
		ping:       make(chan chan struct{}),
		problems:   newProblems(cfg.Log.With("component", "agent")),
	}, nil
}

// Connect hands the agent its datastore; until then it enforces what its
// state cache holds.
func (a *Agent) Connect(ds Datastore) { a.dsc <- ds }

// Kick asks the agent to program the dataplane soon (when something it
// does not watch changed, such as which hosts are alive).
func (a *Agent) Kick() { a.trigger() }

// trigger asks the loop to run soon; it never blocks.
func (a *Agent) trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run programs the dataplane until ctx is done, then saves the cache and
// returns. The dataplane is left as it is when Run returns, so workloads
// keep working while the agent is down.
func (a *Agent) Run(ctx context.Context) error {
	defer a.cache.close()
	defer func() {
		if !a.staleTaken {
			<-a.listed // New's listing of the routes, not to outlive Run
		}
		<-a.primed
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.follow(ctx) })
	wg.Go(func() { a.blockReader(ctx) })
	if rb, ok := a.routes.(interface {
		ReadBehind(context.Context, func())
	}); ok {
		// The kernel's routes read back and the next hops' gateways
		// asked again beside the loop (route.Table); one of our routes
		// changed by someone else, or a gateway that moved, asks for a
		// pass.
		wg.Go(func() { rb.ReadBehind(ctx, a.trigger) })
	}
	saverCtx, stopSaver := context.WithCancel(context.Background())
	var saver sync.WaitGroup
	saver.Go(func() { a.saver(saverCtx) })
	defer saver.Wait()
	defer stopSaver()

	a.trigger() // program from the disk cache at once, if it has a state
	timer := time.NewTimer(a.jitter())
	defer timer.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			// With graceful restart the peers keep our routes while we
			// are away, and the kernel keeps theirs.
			a.bgp.stop()
			stopSaver()
			saver.Wait()
			a.persist()
			return nil
		case <-a.bgp.changed:
		case <-a.changed:
			if a.cache.generation() == a.appliedGen && !a.blocksDue() {
				// A pass since took in this change (a workload's add
				// waited for it): nothing new to program, but the
				// change is still to be saved.
				a.requestSave()
				continue
			}
		case <-a.kick:
		case <-timer.C:
		case reply := <-a.ping:
			close(reply)
			continue
		}
		// Reading this host's blocks costs a round trip to etcd: before
		// a pass only when they were never read, this host's own IPAM
		// may have claimed one or the last read failed. Their periodic
		// read is blockReader's.
		if a.blocksDue() {
			a.refreshBlocks(ctx)
		}
		err := a.apply(ctx)
		a.firstOnce.Do(func() { close(a.first) })
		if err != nil {
			backoff = min(max(backoff*2, 100*time.Millisecond), 10*time.Second)
			a.log.Warn("programming the dataplane; will retry", "err", err, "in", backoff)
			timer.Reset(backoff)
		} else {
			backoff = 0
			timer.Reset(a.jitter())
		}
		a.requestSave()
	}
}

// follow keeps the cache in step with the datastore, once one is
// connected, until ctx ends, and wakes the loop on every change.
func (a *Agent) follow(ctx context.Context) {
	select {
	case ds := <-a.dsc:
		a.mu.Lock()
		a.ds = ds
		a.mu.Unlock()
		connected := time.Now()
		ds.Sync(ctx, func(ev etcdv3.SyncEvent) {
			if ev.Err != nil {
				a.log.Warn("datastore unreachable; enforcing the last state", "err", ev.Err)
			}
			if ev.Snapshot {
				a.log.Info("datastore listed", "resources", len(ev.Updates), "revision", ev.Revision,
					"took", ev.Listed.Round(time.Millisecond), "since_connected", time.Since(connected).Round(time.Millisecond))
				a.mu.Lock()
				a.listedAt = time.Now()
				a.mu.Unlock()
			}
			switch {
			case !a.cache.update(ev):
			case ev.Snapshot:
				a.trigger() // a whole new state: a pass whatever the generation
			default:
				a.wake()
			}
		})
	case <-ctx.Done():
	}
}

// wake tells the loop that the cache changed; it never blocks.
func (a *Agent) wake() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// blocksDue says whether this host's address blocks are to be read
// before the next pass: they never were, this host's IPAM claimed one
// since the last read, or the last read failed.
func (a *Agent) blocksDue() bool {
	a.mu.Lock()
	ds := a.ds
	a.mu.Unlock()
	return ds != nil && (a.blocksRead.Load() == 0 || ds.BlockClaims() != a.claimsRead.Load() || a.blocksStale.Load())
}

// blockReader reads this host's blocks again once they are a resync
// period old, beside the loop, and wakes the loop when they changed: a
// block claimed or released other than by this host's IPAM (`calico
// ipam release`, a removed node's) is found this way. In the loop, a
// change's pass paid this round trip to etcd every resync period
// (5-15 ms of its latency in the Policy benchmark's lab).
func (a *Agent) blockReader(ctx context.Context) {
	tick := time.NewTicker(max(a.cfg.Resync/2, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		read := a.blocksRead.Load()
		if read == 0 || time.Since(time.Unix(0, read)) < a.cfg.Resync {
			continue // not yet read at all (the loop's first), or fresh
		}
		gen := a.cache.generation()
		a.refreshBlocks(ctx)
		if a.cache.generation() != gen {
			a.wake()
		}
	}
}

// Alive waits until the agent's loop answers a probe: it is not stuck in
// a pass (a hung kernel or BGP call). It fails when ctx ends first.
func (a *Agent) Alive(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case a.ping <- reply:
	case <-ctx.Done():
		return errors.New("the agent's loop does not answer")
	}
	<-reply
	return nil
}

// Programmed is closed once the agent has programmed this host's own
// part of the dataplane (its workloads, firewall and routes) from a
// complete state: its state cache or the datastore.
func (a *Agent) Programmed() <-chan struct{} { return a.programmed }

// FirstProgram is the apply that first programmed this host's own part
// of the dataplane (once Programmed is closed).
func (a *Agent) FirstProgram() Applied {
	<-a.programmed
	return a.firstProgram
}

// FirstPass is closed once the agent has made its first attempt to
// program the dataplane: from its state cache, when it has one.
func (a *Agent) FirstPass() <-chan struct{} { return a.first }

// requestSave asks the saver to save the state cache; it never blocks.
func (a *Agent) requestSave() {
	select {
	case a.save <- struct{}{}:
	default:
	}
}

// saver saves the state cache when asked, beside the loop, at most once
// a second, until ctx ends (Run then saves once more, last).
func (a *Agent) saver(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.save:
		}
		a.persist()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// persist saves the state cache (cache.persist), and says so when the
// save took over half a second (a disk or a machine that slow).
func (a *Agent) persist() {
	start := time.Now()
	if err := a.cache.persist(); err != nil {
		a.log.Warn("saving the state cache", "err", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		a.log.Info("saved the state cache", "resources", a.cache.size(), "took", took.Round(time.Millisecond))
	}
}

func (a *Agent) jitter() time.Duration {
	return a.cfg.Resync + rand.N(a.cfg.Resync/5+1)
}

// apply computes the dataplane from the cache and programs it. It does
// nothing until the cache holds a complete state: no driver may delete
// what it owns on the strength of a partial view.
func (a *Agent) apply(ctx context.Context) error {
	inputStart := time.Now()
	gen := a.cache.generation() // before the input: a change meanwhile makes another pass
	in, rev, ok := a.cache.input(a.cfg.Name)
	if !ok {
		return nil
	}
	if a.cfg.Interfaces != nil && calc.NeedsInterfaces(in) {
		in.HostInterfaces = a.cfg.Interfaces()
	}
	if a.cfg.Voters != nil {
		in.Voters = a.cfg.Voters()
	}
	a.setLogLevel(calc.LogSeverity(in))
	start := time.Now()
	d := a.calc.Compute(in)
	computed := time.Now()
	if a.cfg.Verify {
		if fresh := calc.Compute(in); fresh.String() != d.String() || !calc.SameRules(fresh, d) {
			a.log.Error("memo check: the remembered calculation differs from a fresh one; using the fresh one")
			d = fresh
		}
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nftErr := a.nft.Apply(actx, d.Ruleset)
	if nftErr == nil {
		a.forgetMoved(d.Ruleset.Workloads)
	}
	programmed := time.Now()
	want := a.calc.ComputeBGP(in)
	if a.cfg.Verify {
		if fresh := calc.ComputeBGP(in); !reflect.DeepEqual(fresh, want) {
			a.log.Error("memo check: the remembered BGP calculation differs from a fresh one; using the fresh one")
			want = fresh
		}
	}
	bgpErr := a.bgp.apply(actx, want, a.cfg.Down)
	hops := map[netip.Addr]bool{}
	learned := a.learned(actx, func(v netip.Addr) bool {
		hops[v] = true
		return a.cfg.Down != nil && a.cfg.Down(v)
	})
	if a.cfg.Watch != nil {
		a.cfg.Watch(livenessScope(want, hops))
	}
	bgpDone := time.Now()
	local := len(d.Routes)
	d.Routes = withLearned(d.Routes, learned)
	routeErr := a.routes.Apply(d.Routes)
	ownOK := nftErr == nil && !failedAny(routeErr, d.Routes[:local])
	ps := append(dataProblems(d), failsafeProblems(d.Ruleset)...)
	rps, routeErr := routeProblems(routeErr)
	ps = append(ps, rps...)
	a.problems.set("agent", ps)
	err := errors.Join(nftErr, bgpErr, routeErr)
	// The host's own state is in place unless one of its own routes
	// failed: a learned route that cannot be programmed (its next hop is
	// unreachable) does not hold up the workloads waiting for it.
	a.log.Debug("applied", "revision", rev, "calc", computed.Sub(start), "nft", programmed.Sub(computed), "bgp", bgpDone.Sub(programmed), "routes", time.Since(bgpDone), "input", start.Sub(inputStart))
	_, _, fromDisk, _ := a.cache.state()
	res := Applied{
		At: time.Now(), Took: time.Since(start), Revision: rev, Err: err, OwnOK: ownOK,
		Endpoints: len(d.Ruleset.Workloads), Policies: len(d.Ruleset.Policies), HostEndpoints: len(d.Ruleset.HostEndpoints),
		Sets: len(d.Ruleset.Sets), Routes: len(d.Routes), FromSnapshot: fromDisk, Problems: ps,
		CalcTook: computed.Sub(start), NftTook: programmed.Sub(computed), BGPTook: bgpDone.Sub(programmed), RoutesTook: time.Since(bgpDone),
	}
	if r, ok := a.nft.(interface{ Report() nft.Report }); ok && nftErr == nil {
		rep := r.Report()
		res.Firewall = &rep
	}
	if a.cfg.Observe != nil {
		a.cfg.Observe(res)
	}
	a.mu.Lock()
	listedAt := a.takeListing(inputStart, ownOK && !fromDisk)
	a.last = res
	a.advertised, a.installed = want.Advertise, learned
	if ownOK && rev > a.applied {
		a.applied = rev
	}
	if err == nil {
		a.appliedGen = gen
	}
	if ownOK {
		a.programmedOnce.Do(func() { a.firstProgram = res; close(a.programmed) })
	}
	close(a.progress)
	a.progress = make(chan struct{})
	a.mu.Unlock()
	a.logListing(listedAt, inputStart, start, res)
	return err
}

// takeListing returns when the listing this pass programmed arrived
// (zero: none, or the pass did not program it from the datastore) and
// forgets it. The caller holds a.mu.
func (a *Agent) takeListing(inputStart time.Time, programmed bool) time.Time {
	at := a.listedAt
	if at.IsZero() || at.After(inputStart) || !programmed {
		return time.Time{}
	}
	a.listedAt = time.Time{}
	return at
}

// logListing logs what a fresh node or a re-listing spent between the
// listing (at) and the dataplane: the wait for the loop (a pass under
// way, this host's blocks read) and the pass's parts.
func (a *Agent) logListing(at, inputStart, start time.Time, res Applied) {
	if at.IsZero() {
		return
	}
	a.log.Info("programmed the datastore's listing", "since_listed", time.Since(at).Round(time.Millisecond),
		"waited", inputStart.Sub(at).Round(time.Millisecond), "input", start.Sub(inputStart).Round(time.Millisecond),
		"calc", res.CalcTook.Round(time.Millisecond), "nft", res.NftTook.Round(time.Millisecond),
		"bgp", res.BGPTook.Round(time.Millisecond), "routes", res.RoutesTook.Round(time.Millisecond))
}

// setLogLevel makes the node's log level what FelixConfiguration says
// (severity, "" for nothing: the level the agent started with). The
// change is logged at Info, at whichever of the old and new levels shows
// it.
func (a *Agent) setLogLevel(severity string) {
	lv := a.cfg.LogLevel
	if lv == nil {
		return
	}
	level, ok := slogLevel(severity)
	if !ok {
		level, severity = a.startLevel, "as started"
	}
	old := lv.Level()
	if level == old {
		return
	}
	if level > old {
		a.log.Info("log level set from FelixConfiguration logSeverityScreen", "level", severity)
	}
	lv.Set(level)
	if level < old {
		a.log.Info("log level set from FelixConfiguration logSeverityScreen", "level", severity)
	}
}

// failedAny reports whether err says any of routes failed; an error of
// another kind counts as a failure of all.
func failedAny(err error, routes []route.Route) bool {
	if err == nil {
		return false
	}
	var f *route.Failed
	if !errors.As(err, &f) {
		return true
	}
	for _, r := range routes {
		if slices.Contains(f.Dsts, r.Dst) {
			return true
		}
	}
	return false
}

// withLearned adds routes learned by BGP for destinations the host does
// not route itself (its own blocks and workloads win).
func withLearned(own, learned []route.Route) []route.Route {
	mine := make(map[netip.Prefix]bool, len(own))
	for _, r := range own {
		mine[r.Dst] = true
	}
	for _, l := range learned {
		if !mine[l.Dst] {
			own = append(own, l)
		}
	}
	return own
}

// keepStaleRoutes remembers the routes via other hosts that an earlier
// run installed: they are kept until BGP has caught up, so a restart
// leaves no gap in forwarding.
// The first pass takes the listing only when it comes to the routes:
// it is made meanwhile, beside the cache's load, the calculation and the
// firewall.
func (a *Agent) keepStaleRoutes() {
	waited := time.Now()
	for _, r := range <-a.listed {
		if len(r.Via) > 0 {
			a.stale = append(a.stale, r)
		}
	}
	a.staleUntil = time.Now().Add(staleRouteTimeout)
	a.staleTaken = true
	a.log.Debug("routes of the last run listed", "kept", len(a.stale), "waited", time.Since(waited))
}

// staleRouteTimeout bounds how long routes of an earlier run are kept
// (BGP's graceful restart time).
const staleRouteTimeout = 120 * time.Second

// learned are the routes BGP learned, plus the stale ones of an earlier
// run until every session has been up a few seconds (the peers have sent
// their tables) or the restart time has passed; then stale routes that BGP
// did not confirm are swept.
func (a *Agent) learned(ctx context.Context, down func(netip.Addr) bool) []route.Route {
	if !a.staleTaken {
		a.keepStaleRoutes()
	}
	routes := a.bgp.learned(down)
	if a.stale == nil {
		return routes
	}
	synced := time.Now().After(a.staleUntil)
	if !synced {
		if ps, err := a.bgp.peers(ctx); err == nil && len(ps) > 0 {
			synced = true
			for _, p := range ps {
				if p.State != "established" || time.Since(p.Since) < 3*time.Second {
					synced = false
				}
			}
		}
	}
	if synced {
		a.log.Info("BGP is in sync; dropping routes of the earlier run it did not confirm")
		a.stale = nil
		return routes
	}
	for _, r := range a.stale {
		r.Via = slices.DeleteFunc(slices.Clone(r.Via), down)
		if len(r.Via) > 0 {
			routes = withLearned(routes, []route.Route{r})
		}
	}
	return routes
}

// livenessScope are the hosts whose liveness verdict decides a session or
// a route of this host's: its BGP peers, and the next hops (hops) of the
// routes it learned, except on a client of the automatic route
// reflectors past the mesh's size: those are nodes too, each judges its
// clients and drops the session to one that went silent, which withdraws
// its routes everywhere. So a client watches its reflectors only, and
// a reflector every host. Nil while BGP is not running (watch everyone).
func livenessScope(want calc.BGP, hops map[netip.Addr]bool) []netip.Addr {
	if !want.Enabled {
		return nil
	}
	out := make([]netip.Addr, 0, len(want.Peers)+len(hops))
	for _, p := range want.Peers {
		out = append(out, p.Addr)
	}
	if want.Meshed || len(want.Reflectors) == 0 {
		for h := range hops {
			out = append(out, h)
		}
	}
	return out
}

// BGPRoutes are what the last apply advertised and installed from BGP.
func (a *Agent) BGPRoutes() (advertised []netip.Prefix, installed []route.Route) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.advertised, a.installed
}

// Counters reads the packet and byte counts of every policy rule on this
// host.
func (a *Agent) Counters(ctx context.Context) ([]nft.Counter, error) { return a.nft.Counters(ctx) }

// BGPPeers reports the BGP sessions.
func (a *Agent) BGPPeers(ctx context.Context) ([]bgp.PeerStatus, error) { return a.bgp.peers(ctx) }

// BGPAdvertised counts the routes sent to one BGP peer (O(routes); see
// bgp.Speaker.Advertised).
func (a *Agent) BGPAdvertised(ctx context.Context, addr netip.Addr) (int, error) {
	return a.bgp.advertised(ctx, addr)
}

// refreshBlocks reads this host's address blocks; on failure the cache
// keeps the last ones it knew.
func (a *Agent) refreshBlocks(ctx context.Context) {
	a.mu.Lock()
	ds := a.ds
	a.mu.Unlock()
	if ds == nil {
		return
	}
	a.blocksReading.Lock()
	defer a.blocksReading.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	a.blocksStale.Store(false)
	a.claimsRead.Store(ds.BlockClaims()) // before the read: a claim meanwhile is read again next time
	blocks, err := ds.HostBlocks(ctx, a.cfg.Name)
	if err != nil {
		a.blocksStale.Store(true) // try again on the next pass
		return
	}
	a.blocksRead.Store(time.Now().UnixNano())
	slices.SortFunc(blocks, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	a.cache.setBlocks(blocks)
}

// WaitApplied waits until the dataplane has been programmed from a state
// at least as new as datastore revision rev.
func (a *Agent) WaitApplied(ctx context.Context, rev int64) error {
	a.trigger()
	for {
		a.mu.Lock()
		done, ch := a.applied >= rev, a.progress
		a.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Applied is the datastore revision the dataplane was last programmed
// from (this host's own part of it: its endpoints and routes).
func (a *Agent) Applied() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

// IsProgrammed reports whether the agent has programmed this host's own
// part of the dataplane from a complete state.
func (a *Agent) IsProgrammed() bool {
	select {
	case <-a.programmed:
		return true
	default:
		return false
	}
}

// Last is the outcome of the last programming.
func (a *Agent) Last() Applied {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// SyncState is how the agent's copy of the datastore relates to etcd.
type SyncState struct {
	// Revision is the datastore revision the copy is at.
	Revision int64
	// Live: the copy follows etcd right now.
	Live bool
	// FromDisk: the copy is the state cache of an earlier run.
	FromDisk bool
	// Err is why it does not follow etcd, when it does not.
	Err error
	// Changed is when the datastore last changed the copy.
	Changed time.Time
}

// Sync reports how the agent's copy of the datastore relates to etcd.
func (a *Agent) Sync() SyncState {
	rev, live, fromDisk, err := a.cache.state()
	return SyncState{Revision: rev, Live: live, FromDisk: fromDisk, Err: err, Changed: a.cache.changedAt()}
}

// View is the calculation's input at the agent's copy of the datastore,
// with its revision; ok is false until the copy holds a whole state.
func (a *Agent) View() (in calc.Input, rev int64, ok bool) { return a.cache.input(a.cfg.Name) }

// Generation counts the changes to what View returns: a reader that
// derives something from View need not derive it again while it stays.
func (a *Agent) Generation() uint64 { return a.cache.generation() }

// FromStore is the Datastore of a cluster: its resources from s, this
// host's blocks from im.
func FromStore(s *etcdv3.Store, im *ipam.IPAM) Datastore { return storeDatastore{s, im} }

type storeDatastore struct {
	*etcdv3.Store
	ipam *ipam.IPAM
}

func (d storeDatastore) HostBlocks(ctx context.Context, host string) ([]netip.Prefix, error) {
	return d.ipam.HostBlocks(ctx, host)
}

func (d storeDatastore) BlockClaims() uint64 { return d.ipam.Claims() }

// forgetMoved forgets the tracked connections of every address that left
// the workload interface it was on (the workload went, or the address
// now belongs to another), once the table that no longer lets its
// packets through is in place: a flow conntrack still takes as
// established must not reach the address's next owner, whose policy may
// deny it.
func (a *Agent) forgetMoved(eps []nft.Endpoint) {
	now := make(map[netip.Addr]string, len(a.owners))
	for _, e := range eps {
		for _, addr := range e.Addrs {
			now[addr] = e.Iface
		}
	}
	var gone []netip.Addr
	for addr, iface := range a.owners {
		if now[addr] != iface {
			gone = append(gone, addr)
		}
	}
	a.owners = now
	if len(gone) == 0 || a.cfg.Forget == nil {
		return
	}
	if err := a.cfg.Forget(gone); err != nil {
		a.log.Warn("forgetting the connections of addresses that left their workload", "err", err)
	}
}

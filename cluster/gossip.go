package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node tells the others about itself through gossip.
// JSON-encoded into memberlist node meta (must stay under 512 bytes).
type Meta struct {
	Name      string `json:"name"`
	ClusterID string `json:"cluster"`
	IPv4      string `json:"ipv4,omitempty"` // address without length
	IPv6      string `json:"ipv6,omitempty"`
	Role      string `json:"role"` // "voter", "learner", "client"
	Version   string `json:"version"`
	JoinPort  int    `json:"join"`           // join API port (7947)
	EtcdPort  int    `json:"etcd,omitempty"` // etcd client port when it runs a member
	BGPPort   int    `json:"bgp,omitempty"`
	LivePort  int    `json:"live,omitempty"` // liveness check (udp), when it runs one
}

// Member is one node as gossip sees it.
type Member struct {
	Meta
	Addr netip.AddrPort // gossip address
	// State is "alive", "dead", "left" or "stopped" (to start again). memberlist v0.7.0 never tells
	// its user that a node is suspect (hashicorp/memberlist#266, #293),
	// so a suspect node stays "alive" here until it is declared dead.
	State string
	Since time.Time // when State last changed (as seen here)
}

// GossipConfig is how to start gossip.
type GossipConfig struct {
	Meta Meta       // this node; Meta.Name is the memberlist node name
	Bind netip.Addr // address to bind and advertise
	Port int        // default 7946 (tcp+udp)
	Key  []byte     // 32-byte AES key; gossip is encrypted and verified both ways
	// Log receives memberlist's own log lines at debug level.
	Log *slog.Logger
	// ProbeInterval is for tests; zero means the LAN default chosen in
	// StartGossip (400ms). The probe timeout is half of it.
	ProbeInterval time.Duration
}

// Gossip is this node's membership in the cluster's memberlist: who is
// out there, in what state, and what they say about themselves.
type Gossip struct {
	ml     *memberlist.Memberlist
	port   int
	meta0  Meta // as started; Name and ClusterID never change
	log    *slog.Logger
	events chan Member

	// life serializes SetMeta, Leave and Close, so that memberlist's
	// Leave and UpdateNode never run after its Shutdown (Leave panics).
	life sync.Mutex

	mu      sync.Mutex
	meta    []byte // own node meta as gossiped
	members map[string]Member
	// exits are the exit intents members told straight (noteExit): each
	// stands for the death that follows within exitHold, once, and is
	// forgotten when the member is seen alive without one.
	exits    map[string]toldExit
	exitHold time.Duration // defaultExitHold; tests shorten it
	closed   bool
	// voterKicks are told (without blocking) when a voter or learner
	// comes, goes or changes role (VoterChanges).
	voterKicks []chan struct{}
}

// gossipMeta is Meta as it travels. Exit is set just before a node goes
// away on purpose: "leaving" for good, or "stopping" to start again soon
// (its routes stay; see Stop). memberlist does not tell its user whether a
// node left or died (the Node passed to NotifyLeave always says
// StateAlive), so a node announces its intent first, like Serf does.
type gossipMeta struct {
	Meta
	Exit string `json:"exit,omitempty"`
}

const (
	defaultGossipPort = 7946
	// gossipBroadcastTimeout bounds how long SetMeta waits for its update
	// to be handed to the other members.
	gossipBroadcastTimeout = 3 * time.Second
	gossipEventBuffer      = 256
)

var errGossipClosed = errors.New("gossip is shut down")

// StartGossip creates the memberlist and starts listening. It joins no one;
// see Join and Rejoin.
func StartGossip(cfg GossipConfig) (*Gossip, error) {
	if cfg.Port == 0 {
		cfg.Port = defaultGossipPort
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	meta, err := checkGossipConfig(cfg)
	if err != nil {
		return nil, err
	}
	keyring, err := memberlist.NewKeyring(nil, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("making gossip keyring: %w", err)
	}
	g := &Gossip{
		port:     cfg.Port,
		meta0:    cfg.Meta,
		log:      cfg.Log.With("component", "gossip"),
		events:   make(chan Member, gossipEventBuffer),
		meta:     meta,
		members:  make(map[string]Member),
		exits:    make(map[string]toldExit),
		exitHold: defaultExitHold,
	}
	hooks := gossipHooks{g}
	mc := memberlistConfig(cfg)
	mc.Keyring = keyring
	mc.Delegate, mc.Events, mc.Alive = hooks, hooks, hooks
	mc.Logger = slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting gossip on %s: %w", netip.AddrPortFrom(cfg.Bind, uint16(cfg.Port)), err)
	}
	g.ml = ml
	return g, nil
}

// checkGossipConfig refuses a configuration gossip cannot run with, and
// returns the encoded meta.
func checkGossipConfig(cfg GossipConfig) ([]byte, error) {
	if !cfg.Bind.IsValid() || cfg.Bind.IsUnspecified() {
		return nil, fmt.Errorf("gossip needs a specific bind address, not %q", cfg.Bind)
	}
	if len(cfg.Key) != 32 {
		return nil, fmt.Errorf("gossip key is %d bytes, want 32", len(cfg.Key))
	}
	if cfg.Meta.Name == "" || cfg.Meta.ClusterID == "" {
		return nil, errors.New("gossip meta needs a name and a cluster id")
	}
	if len(gossipLabel(cfg)) > memberlist.LabelMaxSize {
		return nil, fmt.Errorf("cluster id %q is too long for a gossip label", cfg.Meta.ClusterID)
	}
	// Leave adds the leave intent, so check the meta fits with it too.
	if _, err := encodeGossipMeta(cfg.Meta, "stopping"); err != nil {
		return nil, err
	}
	return encodeGossipMeta(cfg.Meta, "")
}

func gossipLabel(cfg GossipConfig) string { return "calico/" + cfg.Meta.ClusterID }

// memberlistConfig is memberlist's configuration for a LAN of up to a
// few hundred hosts.
func memberlistConfig(cfg GossipConfig) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.Name
	mc.BindAddr = cfg.Bind.String()
	mc.BindPort = cfg.Port
	mc.AdvertiseAddr = cfg.Bind.String()
	mc.AdvertisePort = cfg.Port
	mc.Label = gossipLabel(cfg)
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	// No compression of what we send: memberlist makes a new LZW writer
	// (its tables) for every packet, about 0.3 MB of garbage a second in
	// a three-host lab, a tenth of an idle node's allocation, for packets
	// of a few hundred bytes on a LAN. Every member still reads
	// compressed packets, so a cluster mid-upgrade gossips as before.
	mc.EnableCompression = false

	// Failure detection. A dead host is found by the first probe that
	// fails (some member probes it about every ProbeInterval, and a failed
	// probe takes one ProbeInterval: ProbeTimeout for the direct ping, the
	// rest for the indirect and TCP ones), then stays suspect for
	//
	//	SuspicionMult * max(1, log10(n)) * ProbeInterval
	//
	// once SuspicionMult-2 = 1 other member has confirmed it (memberlist's
	// suspicionTimeout in util.go), then the dead message is gossiped
	// (GossipInterval 200ms). With 400ms and 3:
	//
	//	n <= 10:  3 * 1.00 * 0.4s = 1.2s, so about 0.4+0.4+1.2+0.2 = 2.2s
	//	n  = 25:  3 * 1.40 * 0.4s = 1.7s, about 2.7s
	//	n  = 50:  3 * 1.70 * 0.4s = 2.0s, about 3.0s
	//	n  = 300: 3 * 2.48 * 0.4s = 3.0s, about 4.0s
	//
	// Without any confirmation the suspicion lasts SuspicionMaxTimeoutMult
	// times as long (4.8s for n <= 10).
	mc.ProbeInterval = 400 * time.Millisecond
	mc.ProbeTimeout = 200 * time.Millisecond
	mc.SuspicionMult = 3
	mc.SuspicionMaxTimeoutMult = 4
	if cfg.ProbeInterval > 0 {
		mc.ProbeInterval = cfg.ProbeInterval
		mc.ProbeTimeout = cfg.ProbeInterval / 2
	}
	// Full state sync over TCP; memberlist stretches it beyond 32 nodes.
	mc.PushPullInterval = 10 * time.Second
	mc.TCPTimeout = 5 * time.Second
	// Keep telling a dead node it is dead for a while, so it can refute.
	mc.GossipToTheDeadTime = 10 * time.Second
	// memberlist accepts a node that restarts under its name at the same
	// address at once (it refutes its death with a higher incarnation);
	// this lets it come back from another address 5s after it died.
	mc.DeadNodeReclaimTime = 5 * time.Second
	return mc
}

// Join contacts the given gossip addresses, "ip" or "ip:port" (the port
// defaults to this node's gossip port), and syncs state with each. It
// returns how many it reached; the error is nil when any was.
func (g *Gossip) Join(addrs []string) (int, error) {
	if g.isClosed() {
		return 0, errGossipClosed
	}
	if len(addrs) == 0 {
		return 0, nil
	}
	full := make([]string, len(addrs))
	for i, a := range addrs {
		full[i] = g.gossipAddr(a)
	}
	n, err := g.ml.Join(full)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("joining gossip at %s: %w", strings.Join(full, ", "), err)
	}
	return n, nil
}

// gossipAddr gives an address "ip" the default gossip port.
func (g *Gossip) gossipAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, uint16(g.port)).String()
	}
	return s
}

// Members returns every node this process has seen, itself and the dead
// and left ones included, sorted by name.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Member returns the node with that name, if this process has seen it.
func (g *Gossip) Member(name string) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	return m, ok
}

// SetMeta changes what this node tells the others about itself and
// broadcasts it. The name and cluster cannot change. When the broadcast
// does not go out in time the error says so, but the new meta is in
// effect and later gossip carries it.
func (g *Gossip) SetMeta(m Meta) error {
	if m.Name != g.meta0.Name || m.ClusterID != g.meta0.ClusterID {
		return fmt.Errorf("gossip meta cannot change name or cluster (%s/%s to %s/%s)",
			g.meta0.ClusterID, g.meta0.Name, m.ClusterID, m.Name)
	}
	if _, err := encodeGossipMeta(m, "stopping"); err != nil {
		return err
	}
	b, err := encodeGossipMeta(m, "")
	if err != nil {
		return err
	}
	g.life.Lock()
	defer g.life.Unlock()
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.meta = b
	}
	g.mu.Unlock()
	if closed {
		return errGossipClosed
	}
	if err := g.ml.UpdateNode(gossipBroadcastTimeout); err != nil {
		return fmt.Errorf("broadcasting gossip meta: %w", err)
	}
	return nil
}

// Events delivers a member each time its State or Meta changes, or the
// liveness check's verdict on it (see Cluster.Down). When the
// reader falls behind the oldest events are dropped; Members has the
// current view. The channel is closed when gossip shuts down.
func (g *Gossip) Events() <-chan Member { return g.events }

// Rejoin joins, now and then every `every`, those of the known addresses
// that are not alive members, until ctx is done. memberlist never dials a
// dead node again, so this is what heals a partition or brings back a
// node that restarted alone. Addresses are as for Join; one that is not
// an IP address is always dialled. Rejoin also returns when gossip shuts
// down. A non-positive `every` means 10s.
func (g *Gossip) Rejoin(ctx context.Context, every time.Duration, known func() []string) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for !g.isClosed() {
		g.rejoinOnce(known())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Gossip) rejoinOnce(known []string) {
	alive := make(map[netip.AddrPort]bool)
	for _, m := range g.Members() {
		if m.State == "alive" {
			alive[m.Addr] = true
		}
	}
	var wg sync.WaitGroup
	for _, s := range known {
		full := g.gossipAddr(s)
		if ap, err := netip.ParseAddrPort(full); err == nil && alive[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] {
			continue
		}
		// In parallel: a dead host costs a dial timeout (TCPTimeout).
		wg.Go(func() {
			if _, err := g.ml.Join([]string{full}); err != nil {
				g.log.Debug("rejoining", "addr", full, "err", err)
				return
			}
			g.log.Debug("rejoined", "addr", full)
		})
	}
	wg.Wait()
}

// Stop tells the others this node is stopping to start again (they see
// it "stopped", not "dead", and keep routing to it while BGP's graceful
// restart lasts), waits up to timeout for that to go out, and shuts
// gossip down without leaving.
func (g *Gossip) Stop(timeout time.Duration) error {
	g.life.Lock()
	defer g.life.Unlock()
	if g.isClosed() {
		return errGossipClosed
	}
	return errors.Join(g.announce("stopping", timeout), g.shutdown())
}

// Leave tells the others this node is leaving, waits up to timeout for
// that to go out, and shuts gossip down.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.life.Lock()
	defer g.life.Unlock()
	if g.isClosed() {
		return errGossipClosed
	}
	deadline := time.Now().Add(timeout)
	errs := []error{g.announce("leaving", timeout/2)}
	if err := g.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		errs = append(errs, fmt.Errorf("leaving gossip: %w", err))
	}
	return errors.Join(append(errs, g.shutdown())...)
}

// announce gossips this node's meta with an exit intent ("leaving" or
// "stopping"), waiting up to timeout for it to go out. The caller holds
// g.life.
func (g *Gossip) announce(exit string, timeout time.Duration) error {
	b, err := encodeGossipMeta(g.ownMeta(), exit)
	if err != nil {
		return nil // checked at start: cannot happen
	}
	g.mu.Lock()
	g.meta = b
	g.mu.Unlock()
	deadline := time.Now().Add(timeout)
	told := g.tellExit(exit)
	err = g.ml.UpdateNode(timeout)
	select {
	case <-told:
	case <-time.After(time.Until(deadline)):
	}
	if err != nil {
		return fmt.Errorf("announcing that this node is %s: %w", exit, err)
	}
	return nil
}

func (g *Gossip) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// ownMeta is the meta this node gossips now.
func (g *Gossip) ownMeta() Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, _, err := decodeGossipMeta(g.meta)
	if err != nil { // cannot happen: we encoded it
		return g.meta0
	}
	return m
}

// Close shuts gossip down without telling anyone; the others find this
// node dead.
func (g *Gossip) Close() error {
	g.life.Lock()
	defer g.life.Unlock()
	return g.shutdown()
}

// shutdown stops memberlist and closes the events. The caller holds life.
func (g *Gossip) shutdown() error {
	err := g.ml.Shutdown()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		close(g.events)
	}
	if err != nil {
		return fmt.Errorf("shutting down gossip: %w", err)
	}
	return nil
}

// observe records what memberlist says about a node. memberlist calls its
// delegates one at a time, with its node lock held: this must not block
// or call back into memberlist.
func (g *Gossip) observe(n *memberlist.Node, state string) {
	meta, exit, err := decodeGossipMeta(n.Meta)
	if err != nil {
		meta = Meta{Name: n.Name} // the alive filter keeps these out
	}
	var addr netip.AddrPort
	if ip, ok := netip.AddrFromSlice(n.Addr); ok {
		addr = netip.AddrPortFrom(ip.Unmap(), n.Port)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	switch {
	case state == "alive" && exit == "":
		delete(g.exits, n.Name) // back, or never went
	case state == "dead" && exit == "":
		exit = g.toldExit(n.Name) // told straight, before its meta came
	}
	g.record(Member{Meta: meta, Addr: addr, State: exitState(state, exit)})
}

// exitState is the state of a node memberlist says is in state, whose
// exit intent is exit: one that went away on purpose did not die.
func exitState(state, exit string) string {
	switch {
	case state == "dead" && exit == "leaving":
		return "left"
	case state == "dead" && exit == "stopping":
		return "stopped"
	}
	return state
}

// record keeps m as the member's state and tells of a change. g.mu is
// held.
func (g *Gossip) record(m Member) {
	m.Since = time.Now()
	old, seen := g.members[m.Name]
	if seen && old.State == m.State {
		m.Since = old.Since
	}
	g.members[m.Name] = m
	if seen && old == m {
		return
	}
	if !seen || old.State != m.State {
		g.log.Info("member "+m.State, "member", m.Name, "addr", m.Addr)
	} else {
		g.log.Debug("member meta changed", "member", m.Name, "meta", m.Meta)
	}
	g.emit(m)
	if isSeat(m.Role) || seen && isSeat(old.Role) {
		if !seen || old.State != m.State || old.Role != m.Role {
			for _, k := range g.voterKicks {
				select {
				case k <- struct{}{}:
				default:
				}
			}
		}
	}
}

// toldExit is an exit intent a member told straight, and when.
type toldExit struct {
	exit string
	at   time.Time
}

// defaultExitHold is how long a told exit intent stands for the member's death:
// longer than a leave's or a stop's death takes to be heard (the leave's
// broadcast, or the failure detector's probes and suspicion, a few
// seconds), short enough that a crash long after a stop the others never
// saw is still a crash.
const defaultExitHold = 30 * time.Second

// toldExit takes the exit intent name told straight, if it stands (see
// exits): it serves one death. g.mu is held.
func (g *Gossip) toldExit(name string) string {
	t, ok := g.exits[name]
	delete(g.exits, name)
	if !ok || time.Since(t.at) > g.exitHold {
		return ""
	}
	return t.exit
}

// exitMsg starts the message a node sends straight to every member as
// it goes away on purpose: the exit intent, then its name.
const exitMsg = "calico-exit\x00"

// tellExit sends this node's exit intent straight to every other member
// (over TCP), beside the meta that gossip spreads: gossip hands each
// broadcast to a few members at random at a time, so a member may hear of
// this node's death before its meta, and take a leave for a crash. The
// channel closes once every send is done.
func (g *Gossip) tellExit(exit string) <-chan struct{} {
	msg := []byte(exitMsg + exit + "\x00" + g.meta0.Name)
	// The members as this node sees them (memberlist's own Nodes change
	// under its lock, which a send does not hold).
	var to []*memberlist.Node
	g.mu.Lock()
	for _, m := range g.members {
		if m.State == "alive" && m.Name != g.meta0.Name && m.Addr.IsValid() {
			to = append(to, &memberlist.Node{Name: m.Name, Addr: m.Addr.Addr().AsSlice(), Port: m.Addr.Port()})
		}
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, n := range to {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.log.Debug("telling a member this node goes", "member", n.Name, "exit", exit, "err", err)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// noteExit takes a member's exit intent told straight (tellExit); a
// member already found dead went on purpose after all.
func (g *Gossip) noteExit(b []byte) {
	rest, ok := strings.CutPrefix(string(b), exitMsg)
	if !ok {
		return
	}
	exit, name, _ := strings.Cut(rest, "\x00")
	if exit != "leaving" && exit != "stopping" || name == "" || name == g.meta0.Name {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	if m, ok := g.members[name]; ok && m.State == "dead" && time.Since(m.Since) < g.exitHold {
		m.State = exitState("dead", exit) // the death it stands for
		g.record(m)
		return
	}
	g.exits[name] = toldExit{exit, time.Now()}
}

func isSeat(role string) bool { return role == "voter" || role == "learner" }

// VoterChanges is told when gossip hears that a host with an etcd member
// (a voter or learner) came, went or changed role, or a host took such a
// role: a client host, which reads the member list seldom in a large
// cluster (ClientPeriod), reads it again at once.
func (g *Gossip) VoterChanges() <-chan struct{} {
	k := make(chan struct{}, 1)
	g.mu.Lock()
	g.voterKicks = append(g.voterKicks, k)
	g.mu.Unlock()
	return k
}

// Alive is how many hosts gossip holds alive, this one included.
func (g *Gossip) Alive() int { return g.ml.NumMembers() }

// touch delivers the named member as an event again: something else
// about it changed (the liveness check's verdict).
func (g *Gossip) touch(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.members[name]; ok && !g.closed {
		g.emit(m)
	}
}

// emit delivers an event without blocking. The caller holds g.mu.
func (g *Gossip) emit(m Member) {
	for {
		select {
		case g.events <- m:
			return
		default:
		}
		select { // full: drop the oldest
		case <-g.events:
		default:
		}
	}
}

func encodeGossipMeta(m Meta, exit string) ([]byte, error) {
	b, err := json.Marshal(gossipMeta{Meta: m, Exit: exit})
	if err != nil {
		return nil, fmt.Errorf("encoding gossip meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip meta is %d bytes, more than %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

func decodeGossipMeta(b []byte) (Meta, string, error) {
	var gm gossipMeta
	if err := json.Unmarshal(b, &gm); err != nil {
		return Meta{}, "", fmt.Errorf("decoding gossip meta: %w", err)
	}
	return gm.Meta, gm.Exit, nil
}

// gossipHooks are the memberlist delegates of a Gossip.
type gossipHooks struct{ g *Gossip }

// NodeMeta implements memberlist.Delegate.
func (h gossipHooks) NodeMeta(int) []byte {
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	return slices.Clone(h.g.meta)
}

func (h gossipHooks) NotifyMsg(b []byte)            { h.g.noteExit(b) }
func (gossipHooks) GetBroadcasts(int, int) [][]byte { return nil }
func (gossipHooks) LocalState(bool) []byte          { return nil }
func (gossipHooks) MergeRemoteState([]byte, bool)   {}

// NotifyJoin implements memberlist.EventDelegate.
func (h gossipHooks) NotifyJoin(n *memberlist.Node) { h.g.observe(n, "alive") }

// NotifyLeave implements memberlist.EventDelegate. n.State does not say
// whether the node died or left (it is always StateAlive), so observe
// looks at the node's leave intent.
func (h gossipHooks) NotifyLeave(n *memberlist.Node) { h.g.observe(n, "dead") }

// NotifyUpdate implements memberlist.EventDelegate. memberlist calls it
// only for a node that is alive (or suspect) and stays so.
func (h gossipHooks) NotifyUpdate(n *memberlist.Node) { h.g.observe(n, "alive") }

// NotifyAlive implements memberlist.AliveDelegate: it refuses nodes of
// another cluster (the label and key should already have kept them out).
func (h gossipHooks) NotifyAlive(n *memberlist.Node) error {
	m, _, err := decodeGossipMeta(n.Meta)
	if err != nil {
		return err
	}
	if m.ClusterID != h.g.meta0.ClusterID {
		return fmt.Errorf("node %s is in cluster %q, not %q", n.Name, m.ClusterID, h.g.meta0.ClusterID)
	}
	if m.Name != n.Name {
		return fmt.Errorf("node %s calls itself %q in its meta", n.Name, m.Name)
	}
	return nil
}

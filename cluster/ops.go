package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MemberStatus is one host as the cluster sees it.
type MemberStatus struct {
	Name       string
	IPv4, IPv6 string
	Role       string // voter, learner, client
	Gossip     string // alive, dead, left, stopped
	// Reach is the liveness check's verdict on an alive host: "up",
	// "down" (silent while others were heard), or "" (no verdict: this
	// host, a host without the check, one it does not watch (not a BGP
	// neighbour), or the check turned off).
	Reach   string
	Since   time.Time
	Version string
}

// Members lists the hosts that gossip knows of, with their etcd role.
func (c *Cluster) Members(ctx context.Context) ([]MemberStatus, error) {
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	if c.id.External {
		list.Members = nil // everyone is a client of it
	}
	var out []MemberStatus
	for _, m := range c.gossip.Members() {
		out = append(out, MemberStatus{Name: m.Name, IPv4: m.IPv4, IPv6: m.IPv6, Role: roleOf(list.Members, m.Name),
			Gossip: m.State, Since: m.Since, Version: m.Version, Reach: c.reach(m)})
	}
	return out, nil
}

// HandOver gives up this host's etcd seat, when it has one, before it
// leaves the cluster for good.
func (c *Cluster) HandOver(ctx context.Context) error {
	for c.memberStarting() { // startLater: a seat to hand over soon
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if c.embedded() == nil {
		return nil
	}
	return c.handOver(ctx)
}

// Depart ends this host's membership once the datastore no longer holds
// it: it leaves gossip and moves its cluster state in the data dir aside,
// so that the next `calico up` starts afresh. That includes the agent's
// copy of the datastore (state.db): loaded by the next `calico up`, it
// would program this cluster's policy, and the blocks this host just
// released, until the new listing came (a file the agent still has open
// keeps its writes where it went). The caller stops the node afterwards.
func (c *Cluster) Depart(ctx context.Context) error {
	name := c.id.Name
	c.client.Delete(ctx, LeavingPrefix+name)
	if err := c.gossip.Leave(3 * time.Second); err != nil {
		c.log.Warn("leaving gossip", "err", err)
	}
	aside := filepath.Join(c.cfg.DataDir, "left-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(aside, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"node.json", "pki", "etcd", "members.json", "state.db"} {
		if err := os.Rename(filepath.Join(c.cfg.DataDir, f), filepath.Join(aside, f)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	c.log.Info("left the cluster; its state is kept in "+aside, "node", name)
	return nil
}

// handOver gives up this host's etcd seat: it marks itself leaving, waits
// (up to a minute) for a client host to take the seat and be promoted,
// then removes its own member.
func (c *Cluster) handOver(ctx context.Context) error {
	if _, err := c.client.Put(ctx, LeavingPrefix+c.id.Name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	if err := c.waitForSuccessor(ctx, time.Now().Add(time.Minute)); err != nil {
		return err
	}
	return c.removeOwnMember(ctx)
}

// waitForSuccessor waits until three voters besides this host serve, or
// no client host could take the seat, or the deadline passes. A learner
// (the second host of a cluster waits as one for a third) has no vote to
// hand over: it does not wait.
func (c *Cluster) waitForSuccessor(ctx context.Context, deadline time.Time) error {
	name := c.id.Name
	for {
		list, err := c.client.MemberList(ctx)
		if err != nil {
			return err
		}
		voters, learners := 0, false
		for _, m := range list.Members {
			switch {
			case m.Name == name:
				if m.IsLearner {
					return nil
				}
			case m.IsLearner:
				learners = true
			default:
				voters++
			}
		}
		candidates := slices.ContainsFunc(c.gossip.Members(), func(m Member) bool {
			return m.Name != name && m.State == "alive" && m.Role == "client"
		})
		if voters >= wantVoters || !candidates && !learners || time.Now().After(deadline) {
			if voters < wantVoters {
				c.log.Warn("leaving with fewer than three voters behind: no client host took the seat", "voters", voters)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// removeOwnMember removes this host's etcd member, talking to the others
// from then on, and stops it.
func (c *Cluster) removeOwnMember(ctx context.Context) error {
	name := c.id.Name
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(list.Members, func(m *etcdserverpb.Member) bool { return m.Name == name })
	others := voterURLs(slices.DeleteFunc(slices.Clone(list.Members), func(m *etcdserverpb.Member) bool { return m.Name == name }))
	if i < 0 || len(others) == 0 {
		return errors.New("this is the only etcd voter: it cannot leave its own cluster (stop it instead)")
	}
	c.client.SetEndpoints(others...)
	c.mu.Lock()
	e := c.etcd
	c.etcd = nil // watchMember: this stop is ours
	c.mu.Unlock()
	// etcd refuses the removal ("unhealthy cluster") until a voter
	// promoted a moment ago counts as started: try again for a while.
	_, err = c.client.MemberRemove(ctx, list.Members[i].ID)
	for deadline := time.Now().Add(30 * time.Second); err != nil && isRetryable(err) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
		_, err = c.client.MemberRemove(ctx, list.Members[i].ID)
	}
	if err != nil {
		c.mu.Lock()
		c.etcd = e
		c.mu.Unlock()
		return fmt.Errorf("removing this host's etcd member: %w", err)
	}
	e.Close()
	c.log.Info("handed over this host's etcd seat")
	return nil
}

// RemoveMember takes a host that is gone for good out of the cluster:
// its etcd member (when quorum allows). A live host is refused: addr, its
// address as the datastore knows it, is asked when gossip has not heard
// of it (this node started after it went).
func (c *Cluster) RemoveMember(ctx context.Context, name string, addr netip.Addr) error {
	if name == c.id.Name {
		return ErrSelf
	}
	if c.alive(name, addr) {
		return fmt.Errorf("node %s: %w", name, ErrAlive)
	}
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return err
	}
	if c.id.External {
		list.Members = nil
	}
	for _, m := range list.Members {
		if m.Name != name {
			continue
		}
		if !m.IsLearner && !c.quorumWithoutOne(list.Members) {
			return fmt.Errorf("removing node %s's etcd member would lose quorum", name)
		}
		if _, err := c.client.MemberRemove(ctx, m.ID); err != nil {
			return fmt.Errorf("removing node %s's etcd member: %w", name, err)
		}
	}
	c.client.Delete(ctx, LeavingPrefix+name, clientv3.WithPrefix())
	c.log.Info("removed node from the cluster", "node", name)
	return nil
}

// Alive reports whether a host is up: gossip says so, or, when gossip has
// not heard of it (this node started after it went), its join API at
// addr answers.
func (c *Cluster) alive(name string, addr netip.Addr) bool {
	if m, ok := c.gossip.Member(name); ok {
		return m.State == "alive" || m.State == "suspect"
	}
	if !addr.IsValid() {
		return false
	}
	conn, err := net.DialTimeout("tcp", hostPort(addr, c.cfg.JoinPort), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Errors that callers of RemoveMember branch on.
var (
	ErrSelf  = errors.New("this is the node itself: use `calico leave`")
	ErrAlive = errors.New("it is alive: run `calico leave` on it")
)

// Down reports whether addr is an address of a host that has left, that
// gossip has declared dead and the liveness check has not heard from
// lately, or that gossip still thinks alive but the liveness check found
// unreachable (sooner than gossip can). A host stopped to start again is
// not down.
func (c *Cluster) Down(addr netip.Addr) bool {
	if c.gossip == nil {
		return false
	}
	s := addr.String()
	for _, m := range c.gossip.Members() {
		if m.IPv4 != s && m.IPv6 != s {
			continue
		}
		switch m.State {
		case "left":
			return true
		case "dead":
			// Heartbeats heard directly outweigh gossip's verdict,
			// which a lossy link can make wrongly (memberlist's own
			// probes, seen from one host).
			return c.live == nil || !c.live.Heard(m.Name)
		case "alive":
			return c.live != nil && c.live.Down(m.Name)
		}
	}
	return false
}

// reach is the liveness check's verdict on m (see MemberStatus.Reach).
func (c *Cluster) reach(m Member) string {
	if c.live == nil || m.State != "alive" || m.LivePort == 0 || m.Name == c.id.Name || !c.live.Watched(m.Name) {
		return ""
	}
	if c.live.Down(m.Name) {
		return "down"
	}
	return "up"
}

// SetLivenessScope makes the liveness check watch only the members with
// one of addrs (the node's BGP neighbours: the hosts whose verdict
// decides a session or a route of this host's), instead of every member
// (nil). Past the mesh's size a client host then heartbeats its route
// reflectors only, and each reflector its clients: O(1) datagrams per
// client host instead of O(N). A host the check stops watching is told
// so (Liveness's farewell), so that it gives no verdict on this one.
func (c *Cluster) SetLivenessScope(addrs []netip.Addr) {
	if addrs == nil {
		c.liveScope.Store(nil)
		return
	}
	m := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		m[a.Unmap()] = true
	}
	c.liveScope.Store(&m)
}

// inLiveScope says whether the liveness check is to watch m.
func (c *Cluster) inLiveScope(m Member) bool {
	scope := c.liveScope.Load()
	if scope == nil {
		return true
	}
	for _, s := range []string{m.IPv4, m.IPv6} {
		if a, err := netip.ParseAddr(s); err == nil && (*scope)[a.Unmap()] {
			return true
		}
	}
	return false
}

// livePeers are the hosts the liveness check watches: the other members
// in its scope that run one, at their IPv4 address (IPv6 without one);
// those gossip calls dead or stopped only for a minute after, so that a
// wrong "dead" from this host's gossip does not silence it towards that
// host (which would then find this one unreachable) and can be
// outweighed (Down).
func (c *Cluster) livePeers() map[string]netip.AddrPort {
	out := map[string]netip.AddrPort{}
	for _, m := range c.gossip.Members() {
		if m.LivePort == 0 || m.Name == c.id.Name || m.State == "left" ||
			(m.State != "alive" && time.Since(m.Since) > livenessAfterDead) || !c.inLiveScope(m) {
			continue
		}
		a, err := netip.ParseAddr(m.IPv4)
		if err != nil {
			if a, err = netip.ParseAddr(m.IPv6); err != nil {
				continue
			}
		}
		out[m.Name] = netip.AddrPortFrom(a, uint16(m.LivePort))
	}
	return out
}

// liveChanged tells gossip's readers (the node's agent) that a host's
// reachability changed.
func (c *Cluster) liveChanged(name string) { c.gossip.touch(name) }

// GossipEvents delivers a member whenever its state or meta changes, and
// this host's own when the voters (Voters) change; it is closed when the
// cluster closes.
func (c *Cluster) GossipEvents() <-chan Member { return c.gossip.Events() }

// gossipSeeds are the gossip addresses of every node gossip knows of,
// dead ones included: they are where to look for the others next time.
func (c *Cluster) gossipSeeds() []string {
	var out []string
	for _, m := range c.gossip.Members() {
		if m.Name != c.id.Name && m.Addr.IsValid() {
			out = append(out, m.Addr.String())
		}
	}
	slices.Sort(out)
	return out
}

// VotersDown names the etcd voters, as last listed, whose hosts gossip
// does not see alive, and counts the voters: what a user needs to know
// when the datastore does not answer.
func (c *Cluster) VotersDown() (down []string, voters int) {
	c.mu.Lock()
	members := slices.Clone(c.members)
	c.mu.Unlock()
	for _, m := range members {
		if m.IsLearner {
			continue
		}
		voters++
		if m.Name == c.id.Name {
			if c.embedded() == nil {
				down = append(down, m.Name+" (this host; its member is not running)")
			}
			continue
		}
		if g, ok := c.gossip.Member(m.Name); !ok || g.State != "alive" {
			state := "unknown"
			if ok {
				state = g.State
			}
			down = append(down, fmt.Sprintf("%s (%s)", cmp.Or(m.Name, "an unstarted member"), state))
		}
	}
	return down, voters
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"calico/store"
	"calico/store/ipam"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeStatus is one node as `calico node list` shows it.
type NodeStatus struct {
	Name    string    `json:"name"`
	IPv4    string    `json:"ipv4,omitempty"`
	IPv6    string    `json:"ipv6,omitempty"`
	Role    string    `json:"role"`   // voter, learner, client
	Gossip  string    `json:"gossip"` // alive, suspect, dead, left, unknown
	Since   time.Time `json:"since,omitzero"`
	Version string    `json:"version,omitempty"`
}

// Nodes lists every node the datastore or gossip knows of.
func (c *Cluster) Nodes(ctx context.Context) ([]NodeStatus, error) {
	nodes, err := store.ListOf[*store.Node](ctx, c.Store, "")
	if err != nil {
		return nil, err
	}
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	if c.Identity.External {
		list.Members = nil // everyone is a client of it
	}
	byName := map[string]*NodeStatus{}
	var out []*NodeStatus
	add := func(name string) *NodeStatus {
		if s, ok := byName[name]; ok {
			return s
		}
		s := &NodeStatus{Name: name, Role: roleOf(list.Members, name), Gossip: "unknown"}
		byName[name] = s
		out = append(out, s)
		return s
	}
	for _, n := range nodes {
		s := add(n.Metadata.Name)
		if b := n.Spec.BGP; b != nil {
			s.IPv4, s.IPv6 = b.IPv4Address, b.IPv6Address
		}
	}
	for _, m := range c.gossip.Members() {
		if _, ok := byName[m.Name]; !ok && m.State != "alive" {
			continue // gone, and no Node says otherwise
		}
		s := add(m.Name)
		s.Gossip, s.Since, s.Version = m.State, m.Since, m.Version
		if s.IPv4 == "" {
			s.IPv4, s.IPv6 = m.IPv4, m.IPv6
		}
	}
	res := make([]NodeStatus, 0, len(out))
	for _, s := range out {
		res = append(res, *s)
	}
	slices.SortFunc(res, func(a, b NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	return res, nil
}

// Leave takes this host out of the cluster for good: a voter first hands
// its seat to a client host (when there is one), then the host's IPAM
// blocks are released, its Node is deleted, it leaves gossip, and its
// cluster state in the data dir is moved aside, so that the next `calico
// up` starts afresh. The caller has removed the host's workloads and
// stops the node afterwards.
func (c *Cluster) Leave(ctx context.Context, im *ipam.IPAM) error {
	name := c.Identity.Name
	if c.embedded() != nil {
		if err := c.handOver(ctx); err != nil {
			return err
		}
	}
	if err := im.ReleaseHost(ctx, name); err != nil {
		return err
	}
	if _, err := c.Store.Delete(ctx, store.ID{Kind: store.KindNode, Name: name}, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting node %s: %w", name, err)
	}
	c.client.Delete(ctx, leavingKey+name)
	if err := c.gossip.Leave(3 * time.Second); err != nil {
		c.log.Warn("leaving gossip", "err", err)
	}
	aside := filepath.Join(c.cfg.DataDir, "left-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(aside, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"node.json", "pki", "etcd", "members.json"} {
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
	name := c.Identity.Name
	if _, err := c.client.Put(ctx, leavingKey+name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		list, err := c.client.MemberList(ctx)
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range list.Members {
			if !m.IsLearner && m.Name != name {
				voters++
			}
		}
		candidates := false
		for _, m := range c.gossip.Members() {
			if m.Name != name && m.State == "alive" && m.Role == "client" {
				candidates = true
			}
		}
		if voters >= wantVoters || !candidates && !hasLearner(list.Members) || time.Now().After(deadline) {
			if voters < wantVoters {
				c.log.Warn("leaving with fewer than three voters behind: no client host took the seat", "voters", voters)
			}
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Talk to the others from here on: this member is going away.
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return err
	}
	var self *etcdserverpb.Member
	for _, m := range list.Members {
		if m.Name == name {
			self = m
		}
	}
	others := voterURLs(slices.DeleteFunc(slices.Clone(list.Members), func(m *etcdserverpb.Member) bool { return m.Name == name }))
	if self == nil || len(others) == 0 {
		return errors.New("this is the only etcd voter: it cannot leave its own cluster (stop it instead)")
	}
	c.client.SetEndpoints(others...)
	c.mu.Lock()
	e := c.etcd
	c.etcd = nil // watchMember: this stop is ours
	c.mu.Unlock()
	if _, err := c.client.MemberRemove(ctx, self.ID); err != nil {
		c.mu.Lock()
		c.etcd = e
		c.mu.Unlock()
		return fmt.Errorf("removing this host's etcd member: %w", err)
	}
	e.Close()
	c.log.Info("handed over this host's etcd seat")
	return nil
}

func hasLearner(ms []*etcdserverpb.Member) bool {
	return slices.ContainsFunc(ms, func(m *etcdserverpb.Member) bool { return m.IsLearner })
}

// RemoveNode removes a host that is gone for good, as `calico leave` would
// have: its etcd member (when quorum allows), its workload endpoints and
// their addresses, its IPAM blocks and its Node. A live host is refused.
func (c *Cluster) RemoveNode(ctx context.Context, im *ipam.IPAM, name string) error {
	if name == c.Identity.Name {
		return errors.New("this is the node itself: use `calico leave`")
	}
	node, err := store.GetOf[*store.Node](ctx, c.Store, "", name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no node %s", name)
	} else if err != nil {
		return err
	}
	alive := false
	if m, ok := c.gossip.Member(name); ok {
		alive = m.State == "alive" || m.State == "suspect"
	} else if node.Spec.BGP != nil {
		// Gossip has not heard of it (this node started after it went):
		// ask its join API.
		if p, err := netip.ParsePrefix(node.Spec.BGP.IPv4Address); err == nil {
			if conn, err := net.DialTimeout("tcp", hostPort(p.Addr(), c.cfg.JoinPort), time.Second); err == nil {
				conn.Close()
				alive = true
			}
		}
	}
	if alive {
		return fmt.Errorf("node %s is alive: run `calico leave` on it", name)
	}
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return err
	}
	if c.Identity.External {
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
	weps, err := store.ListOf[*store.WorkloadEndpoint](ctx, c.Store, "")
	if err != nil {
		return err
	}
	for _, w := range weps {
		if w.Spec.Node != name {
			continue
		}
		for _, n := range w.Spec.IPNetworks {
			if p, err := netip.ParsePrefix(n); err == nil {
				if err := im.Release(ctx, p.Addr()); err != nil && !errors.Is(err, ipam.ErrNotAllocated) {
					return err
				}
			}
		}
		if _, err := c.Store.Delete(ctx, store.IDOf(w), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if err := im.ReleaseHost(ctx, name); err != nil {
		return err
	}
	if _, err := c.Store.Delete(ctx, store.ID{Kind: store.KindNode, Name: name}, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.client.Delete(ctx, leavingKey+name, clientv3.WithPrefix())
	c.log.Info("removed node", "node", name)
	return nil
}

// Down reports whether addr is an address of a host that gossip has
// declared dead or that has left.
func (c *Cluster) Down(addr netip.Addr) bool {
	if c.gossip == nil {
		return false
	}
	s := addr.String()
	for _, m := range c.gossip.Members() {
		if (m.IPv4 == s || m.IPv6 == s) && (m.State == "dead" || m.State == "left") {
			return true
		}
	}
	return false
}

// GossipEvents delivers a member whenever its state or meta changes; it
// is closed when the cluster closes.
func (c *Cluster) GossipEvents() <-chan Member { return c.gossip.Events() }

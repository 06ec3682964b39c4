package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
)

// The etcd member set. The cluster wants three voters: the first three
// hosts, and later a healthy client host in place of one that died. Every
// change goes through learners, one seat at a time:
//
//   - A host that wants a seat takes the membership lock (an etcd mutex),
//     counts the seats (voters and learners, not counting hosts that are
//     leaving), and when fewer than three are taken adds itself as a
//     learner, then starts its member. The lock makes the count and the add
//     one step, so concurrent joins never overshoot.
//   - The leader promotes learners once they have caught up, but holds a
//     lone learner next to a lone voter: two voters tolerate no failure and
//     are more fragile than one, so the cluster goes from one voter to three
//     (MaxLearners is 2 for this).
//   - The leader removes a voter whose host gossip has declared dead for
//     longer than VoterReplaceAfter, when quorum allows, and a learner whose
//     host is dead; a client host then takes the free seat.
const (
	wantVoters  = 3
	maxLearners = 2
	lockPrefix  = "/calico/cluster/v1/membership-lock"
	// LeavingPrefix holds a key for each host handing over its seat.
	LeavingPrefix = "/calico/cluster/v1/leaving/"
	// deadLearnerAfter is how long a learner's host may be dead before its
	// seat is freed.
	deadLearnerAfter = 30 * time.Second
)

// isRetryable reports whether a membership change failed for a reason that
// passes: another learner is catching up, or the cluster is settling.
func isRetryable(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{rpctypes.ErrTooManyLearners, rpctypes.ErrUnhealthy, rpctypes.ErrMemberNotEnoughStarted, rpctypes.ErrMemberLearnerNotReady, rpctypes.ErrNoLeader} {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return true
		}
	}
	return false
}

// leaving lists the hosts that are handing over their seat.
func leaving(ctx context.Context, cli *clientv3.Client, opts ...clientv3.OpOption) (map[string]bool, error) {
	resp, err := cli.Get(ctx, LeavingPrefix, append(opts, clientv3.WithPrefix(), clientv3.WithKeysOnly())...)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), LeavingPrefix)] = true
	}
	return out, nil
}

// claimSeat adds this host as a learner if a seat is free (a learner that
// never started does not hold one: it is removed). It returns the
// member list including the new learner, or nil when every seat is taken,
// and a release that the caller calls once its member has started (or
// failed to): the lock is held until then, because etcd can list only one
// member that has not started yet in a new member's initial cluster.
func claimSeat(ctx context.Context, cli *clientv3.Client, name, peerURL string) ([]*etcdserverpb.Member, func(), error) {
	for {
		members, release, err := tryClaimSeat(ctx, cli, name, peerURL)
		if err == nil || !isRetryable(err) {
			return members, release, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("waiting for a seat among the etcd members: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func tryClaimSeat(ctx context.Context, cli *clientv3.Client, name, peerURL string) (members []*etcdserverpb.Member, release func(), err error) {
	// The lease is granted under ctx, so a node that closes meanwhile
	// is not held up by a grant etcd never answers; the session that
	// keeps it alive outlives ctx (the seat is released by release).
	lease, err := cli.Grant(ctx, 10)
	if err != nil {
		return nil, nil, err
	}
	s, err := concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, nil, err
	}
	mu := concurrency.NewMutex(s, lockPrefix)
	if err := mu.Lock(ctx); err != nil {
		s.Close()
		return nil, nil, err
	}
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		mu.Unlock(uctx)
		s.Close()
	}
	// Without a seat (or on an error) the lock goes at once; with one, it
	// goes when the caller releases it.
	defer func() {
		if members == nil {
			unlock()
			release = func() {}
		}
	}()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, nil, err
	}
	gone, err := leaving(ctx, cli)
	if err != nil {
		return nil, nil, err
	}
	seats := 0
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, peerURL) {
			// Added before (an earlier try that lost its answer).
			return list.Members, unlock, nil
		}
		if m.Name == "" && m.IsLearner {
			// A learner that never started, though whoever added it held
			// this lock until its member started: that host failed (its
			// disk, say) and its seat is free again.
			if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
				return nil, nil, fmt.Errorf("removing a learner that never started: %w", err)
			}
			continue
		}
		if !gone[m.Name] {
			seats++
		}
	}
	if seats >= wantVoters {
		return nil, nil, nil
	}
	resp, err := cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return nil, nil, err
	}
	return resp.Members, unlock, nil
}

// initialCluster is etcd's --initial-cluster for a member joining a
// running cluster; the new member has no name yet in the list.
func initialCluster(members []*etcdserverpb.Member, name, peerURL string) string {
	var parts []string
	for _, m := range members {
		n := m.Name // empty for another member that has not started yet;
		// etcd wants it listed all the same ("=URL", as etcdctl prints it)
		if slices.Contains(m.PeerURLs, peerURL) {
			n = name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

// voterURLs are the client URLs of the started voters.
func voterURLs(members []*etcdserverpb.Member) []string {
	var out []string
	for _, m := range members {
		if !m.IsLearner && m.Name != "" {
			out = append(out, m.ClientURLs...)
		}
	}
	return out
}

// clientEndpoints orders the voters' client URLs for this host's etcd
// client: its own member first when it is a started voter, so that a voter
// never needs another host to reach the datastore; then the voters whose
// hosts are not known to be down; then the rest, so that the list is never
// empty while any voter is listed.
func clientEndpoints(voters []string, own string, down func(url string) bool) []string {
	var first, up, rest []string
	for _, u := range voters {
		switch {
		case u == own:
			first = append(first, u)
		case down != nil && down(u):
			rest = append(rest, u)
		default:
			up = append(up, u)
		}
	}
	out := append(first, up...)
	if len(out) == 0 {
		out = rest
	}
	return out
}

// followLoop keeps the etcd client's endpoints in step with the voters,
// every second (every period on a client host of a large cluster, and at
// once when gossip hears of a change of the voters), on its own so that
// nothing slower (a client waiting for a seat) holds it up. The list is
// the one the member asked holds (serializable): no round of the voters
// for each host every second, and a member that is behind is caught up
// with at the next tick.
func (c *Cluster) followLoop() {
	kicks := c.gossip.VoterChanges()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(c.period()):
		case <-kicks:
		}
		ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		list, err := c.client.MemberList(ctx, clientv3.WithSerializable())
		cancel()
		if err != nil {
			c.followVoters(nil)
			continue
		}
		c.followVoters(list.Members)
	}
}

// followVoters points this host's etcd client at the voters of a fresh
// member list (or, when none could be listed, at every endpoint this host
// remembers), so that losing any one host, the founder included, never
// takes the datastore away from the others.
func (c *Cluster) followVoters(members []*etcdserverpb.Member) {
	if c.id.External || c.client == nil {
		return
	}
	var voters []string
	if members != nil {
		voters = voterURLs(members)
	} else {
		// The datastore did not answer: try every voter this host has
		// heard of, remembered or announced by gossip.
		c.mu.Lock()
		voters = slices.Clone(c.known.Endpoints)
		c.mu.Unlock()
		if c.gossip != nil {
			for _, m := range c.gossip.Members() {
				if m.Role == "voter" && m.EtcdPort > 0 && m.State == "alive" {
					if a, err := netip.ParseAddr(cmp.Or(m.IPv4, m.IPv6)); err == nil {
						if u := "https://" + hostPort(a, m.EtcdPort); !slices.Contains(voters, u) {
							voters = append(voters, u)
						}
					}
				}
			}
		}
	}
	own, mine := "", c.member.clientURL()
	if e := c.embedded(); e != nil && ready(e) {
		own = mine
		if members == nil && !slices.Contains(voters, own) && c.id.Role == "voter" {
			voters = append(voters, own)
		}
	} else {
		// This host's member is not serving yet (starting, or held
		// back: startLater) or no longer (a full disk). One that has
		// started but not yet caught up with the leader takes requests
		// and makes them wait for that, a few hundred ms after a
		// restart: the client keeps to the others meanwhile.
		voters = slices.DeleteFunc(voters, func(u string) bool { return u == mine })
	}
	eps := clientEndpoints(voters, own, c.voterDown)
	if len(eps) == 0 || slices.Equal(eps, c.client.Endpoints()) {
		return
	}
	c.client.SetEndpoints(eps...)
	c.log.Debug("etcd endpoints", "endpoints", eps)
}

// ready reports whether a member has joined the cluster and serves.
func ready(e *embed.Etcd) bool {
	select {
	case <-e.Server.ReadyNotify():
		return true
	default:
		return false
	}
}

// voterDown reports whether the host of a voter's client URL is one that
// gossip declares dead or gone.
func (c *Cluster) voterDown(clientURL string) bool {
	u, err := url.Parse(clientURL)
	if err != nil || c.gossip == nil {
		return false
	}
	host := u.Hostname()
	for _, m := range c.gossip.Members() {
		if (m.State == "dead" || m.State == "left" || m.State == "stopped") && (m.IPv4 == host || m.IPv6 == host) {
			return true
		}
	}
	return false
}

// roleOf is a host's role in a member list: voter, learner or client.
func roleOf(members []*etcdserverpb.Member, name string) string {
	for _, m := range members {
		if m.Name == name {
			if m.IsLearner {
				return "learner"
			}
			return "voter"
		}
	}
	return "client"
}

// manage is the leader's part: promote learners, free the seats of dead
// hosts. It runs on every member and acts only on the leader, one change
// per call.
func (c *Cluster) manage(ctx context.Context) error {
	e := c.embedded()
	if e == nil || e.Server.Leader() != e.Server.MemberID() {
		return nil
	}
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return err
	}
	gone, err := leaving(ctx, c.client)
	if err != nil {
		return err
	}
	var voters, learners []*etcdserverpb.Member
	for _, m := range list.Members {
		if m.IsLearner {
			learners = append(learners, m)
		} else {
			voters = append(voters, m)
		}
	}
	if c.promote(ctx, voters, learners, gone) {
		return nil
	}
	c.freeSeats(ctx, list.Members, voters, learners)
	return nil
}

// promote promotes a learner that has caught up, except a lone learner
// next to a lone voter; it reports whether it did.
func (c *Cluster) promote(ctx context.Context, voters, learners []*etcdserverpb.Member, gone map[string]bool) bool {
	stay := 0
	for _, v := range voters {
		if !gone[v.Name] {
			stay++
		}
	}
	if stay == 1 && len(learners) == 1 {
		return false
	}
	for _, l := range learners {
		if _, err := c.client.MemberPromote(ctx, l.ID); err != nil {
			if !isRetryable(err) {
				c.log.Warn("promoting a learner", "member", l.Name, "err", err)
			}
			continue
		}
		c.log.Info("promoted a learner to voter", "member", l.Name)
		return true
	}
	return false
}

// freeSeats removes the learner of a dead host, or else the voter of a
// host dead longer than VoterReplaceAfter when quorum allows: a client
// host then takes the free seat.
func (c *Cluster) freeSeats(ctx context.Context, members, voters, learners []*etcdserverpb.Member) {
	now := time.Now()
	dead := func(name string, after time.Duration) bool {
		m, ok := c.gossip.Member(name)
		return ok && (m.State == "dead" || m.State == "left" || m.State == "stopped") && now.Sub(m.Since) >= after
	}
	for _, l := range learners {
		if l.Name != "" && dead(l.Name, deadLearnerAfter) {
			if _, err := c.client.MemberRemove(ctx, l.ID); err == nil {
				c.log.Info("removed the learner of a dead host", "member", l.Name)
			}
			return
		}
	}
	for _, v := range voters {
		if v.Name == c.id.Name || !dead(v.Name, c.cfg.VoterReplaceAfter) {
			continue
		}
		if !c.quorumWithoutOne(members) {
			c.log.Warn("a voter's host is dead but removing it would lose quorum", "member", v.Name)
			continue
		}
		if _, err := c.client.MemberRemove(ctx, v.ID); err != nil {
			c.log.Warn("removing the member of a dead host", "member", v.Name, "err", err)
			return
		}
		c.log.Info("removed the etcd member of a dead host; a client host takes its seat", "member", v.Name,
			"dead_for", now.Sub(c.gossipSince(v.Name)).Round(time.Second))
		return
	}
}

// quorumWithoutOne reports whether the voters gossip sees alive (this
// host counts as alive) make a quorum of the voters once one dead voter is
// removed.
func (c *Cluster) quorumWithoutOne(members []*etcdserverpb.Member) bool {
	voters, healthy := 0, 0
	for _, v := range members {
		if v.IsLearner {
			continue
		}
		voters++
		if m, ok := c.gossip.Member(v.Name); v.Name == c.id.Name || ok && (m.State == "alive" || m.State == "suspect") {
			healthy++
		}
	}
	return healthy >= (voters-1)/2+1
}

func (c *Cluster) gossipSince(name string) time.Time {
	m, _ := c.gossip.Member(name)
	return m.Since
}

// known is what a node remembers of the cluster between runs, so that it
// can find the others when it starts again (whoever is up).
type known struct {
	Endpoints []string `json:"endpoints"` // etcd voters' client URLs
	Seeds     []string `json:"seeds"`     // gossip addresses
}

func knownPath(dataDir string) string { return filepath.Join(dataDir, "members.json") }

func loadKnown(dataDir string) known {
	var k known
	if b, err := os.ReadFile(knownPath(dataDir)); err == nil {
		json.Unmarshal(b, &k)
	}
	return k
}

func (k known) save(dataDir string) error {
	b, _ := json.MarshalIndent(k, "", "  ")
	return writeFileAtomic(knownPath(dataDir), append(b, '\n'), 0o600)
}

// VoterAddrs are the addresses of the started voters of an etcd member
// list (the hosts of their client URLs), sorted: the automatic BGP route
// reflectors (calc.ComputeBGP).
func VoterAddrs(members []*etcdserverpb.Member) []netip.Addr { return urlHosts(voterURLs(members)) }

// Voters are the addresses of the etcd voters as this host last listed
// them, or none with an external etcd.
func (c *Cluster) Voters() []netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id.External {
		return nil
	}
	return urlHosts(c.known.Endpoints)
}

// KnownVoters is Voters as this host saved them in its data dir: what a
// node restarted from its state cache has before its cluster starts.
func KnownVoters(dataDir string) []netip.Addr {
	if id, ok, err := LoadIdentity(dataDir); err != nil || !ok || id.External {
		return nil
	}
	return urlHosts(loadKnown(dataDir).Endpoints)
}

func urlHosts(urls []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

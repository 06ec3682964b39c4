package sim

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"calico/cluster"
	"calico/store"
	"calico/store/ipam"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// emulation puts on etcd, for each live simulated host, the load a
// client node puts on it besides its writes: a watch of every resource
// (the agent's Sync), the member list twice and the hosts handing over
// their seats once (the cluster's membership loop and its endpoint
// follower; serializable, as a client host reads them) every
// cluster.ClientPeriod of the simulation's size (a second up to 50 hosts,
// 20 s at 1,000), and its blocks every 5 s (the agent's resync). The watches start at the current revision: a node that starts
// lists every resource first, which a thousand emulated nodes starting at
// once would turn into a benchmark of their own start. It is off until
// turned on, so that growing the simulation does not pay for it.
type emulation struct {
	on      atomic.Bool
	mu      sync.Mutex
	cancels map[string]context.CancelFunc
	rr      atomic.Int64

	// Events counts the watch events the emulated nodes received; Reads
	// the member lists and block reads they made; Errors those that
	// failed.
	Events, Reads, Errors atomic.Int64
}

// Emulate turns the emulation on or off for every live host.
func (s *Sim) Emulate(on bool) {
	s.emu.on.Store(on)
	for _, h := range s.Hosts() {
		if on && !h.isDead() {
			s.emu.start(s, h)
		} else {
			s.emu.stop(h)
		}
	}
}

func (h *Host) isDead() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dead
}

func (e *emulation) start(s *Sim, h *Host) {
	if !e.on.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancels == nil {
		e.cancels = map[string]context.CancelFunc{}
	}
	if e.cancels[h.Name] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancels[h.Name] = cancel
	cli := s.cfg.Clients[int(e.rr.Add(1))%len(s.cfg.Clients)]
	go e.watch(ctx, cli)
	go e.pollMembers(ctx, s, cli)
	go e.pollBlocks(ctx, cli, h.Name)
}

func (e *emulation) stop(h *Host) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.cancels[h.Name]; c != nil {
		c()
		delete(e.cancels, h.Name)
	}
}

func (e *emulation) watch(ctx context.Context, cli *clientv3.Client) {
	for ctx.Err() == nil {
		for wr := range cli.Watch(clientv3.WithRequireLeader(ctx), store.ResourcePrefix, clientv3.WithPrefix()) {
			e.Events.Add(int64(len(wr.Events)))
		}
	}
}

// pollMembers reads what a client host's membership tick and endpoint
// follower read, at their pace for the simulation's size (in the node
// each waits its own random time around the period; here together).
func (e *emulation) pollMembers(ctx context.Context, s *Sim, cli *clientv3.Client) {
	wait := rand.N(cluster.ClientPeriod(s.size())) // spread the hosts' ticks
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = cluster.ClientWait(s.size())
		for range 2 {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cli.MemberList(rctx, clientv3.WithSerializable())
			cancel()
			e.count(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(rctx, cluster.LeavingPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSerializable())
		cancel()
		e.count(err)
	}
}

// pollBlocks reads the host's blocks every 5 s, as the agent's resync.
func (e *emulation) pollBlocks(ctx context.Context, cli *clientv3.Client, host string) {
	im := ipam.New(cli)
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(5 * time.Second)):
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := im.HostBlocks(rctx, host)
		cancel()
		e.count(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *emulation) count(err error) {
	if err != nil {
		e.Errors.Add(1)
		return
	}
	e.Reads.Add(1)
}

// probe is one more watcher of every resource, as a node's, that notes
// when each revision arrives: how soon a node hears of a change, at the
// load of the moment.
type probe struct {
	mu      sync.Mutex
	arrived map[int64]time.Time
	events  atomic.Int64
}

func (p *probe) run(ctx context.Context, cli *clientv3.Client) {
	p.arrived = map[int64]time.Time{}
	for ctx.Err() == nil {
		for wr := range cli.Watch(clientv3.WithRequireLeader(ctx), store.ResourcePrefix, clientv3.WithPrefix()) {
			now := time.Now()
			p.events.Add(int64(len(wr.Events)))
			p.mu.Lock()
			for _, e := range wr.Events {
				p.arrived[e.Kv.ModRevision] = now
			}
			if len(p.arrived) > 100000 {
				for rev, at := range p.arrived {
					if now.Sub(at) > time.Minute {
						delete(p.arrived, rev)
					}
				}
			}
			p.mu.Unlock()
		}
	}
}

// arrival waits (up to 30 s) for revision rev and says when it arrived.
func (p *probe) arrival(rev int64) (time.Time, bool) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		p.mu.Lock()
		at, ok := p.arrived[rev]
		p.mu.Unlock()
		if ok {
			return at, true
		}
	}
	return time.Time{}, false
}

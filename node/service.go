package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"calico/cluster"
	"calico/node/systemd"
)

// Notifier tells the service manager how the node is doing, in systemd's
// notification protocol; *systemd.Notifier is one.
type Notifier interface {
	Notify(states ...string) error
	// WatchdogInterval is how often the watchdog wants WATCHDOG=1, or 0.
	WatchdogInterval() time.Duration
}

// service is the node's side of its service manager: STATUS= lines as it
// starts, READY=1 once it serves its API and has programmed the
// dataplane, STOPPING=1, and WATCHDOG=1 from the start of the process
// for as long as every loop the node has started answers a probe.
type service struct {
	notify Notifier
	log    *slog.Logger

	mu      sync.Mutex
	status  string
	probes  []probe
	failing string // the probe that last failed, for the log

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// A probe asks one of the node's loops whether it is alive.
type probe struct {
	name  string
	alive func(ctx context.Context) error
}

// startService starts the watchdog's pings (when systemd keeps a
// watchdog); stopping ends them.
func startService(n Notifier, log *slog.Logger) *service {
	s := &service{notify: n, log: log.With("component", "service")}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if n == nil {
		return s
	}
	if every := n.WatchdogInterval(); every > 0 {
		s.done.Go(func() { s.watchdog(ctx, every) })
	}
	return s
}

func (s *service) send(states ...string) {
	if s.notify == nil {
		return
	}
	if err := s.notify.Notify(states...); err != nil {
		s.log.Debug("notifying the service manager", "err", err)
	}
}

// setStatus sends a STATUS= line when the status changed.
func (s *service) setStatus(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	changed := msg != s.status
	s.status = msg
	s.mu.Unlock()
	if changed {
		s.send(systemd.Status(msg))
	}
}

// ready says the node is ready, with its status.
func (s *service) ready(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.status = msg
	s.mu.Unlock()
	s.send(systemd.Ready, systemd.Status(msg))
}

// watch adds a loop that must answer for the watchdog to be pinged.
func (s *service) watch(name string, alive func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probes = append(s.probes, probe{name, alive})
}

// stopping ends the watchdog's pings and says the node is stopping.
func (s *service) stopping(why string) {
	s.cancel()
	s.done.Wait()
	s.send(systemd.Stopping, systemd.Status(why))
}

// watchdog pings the watchdog every interval, at once first, while every
// probe answers within half an interval. A node whose loop is stuck stops
// pinging, and systemd restarts it when the watchdog's time runs out.
func (s *service) watchdog(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.probe(ctx, every/2); err == nil {
			s.send(systemd.Watchdog)
		} else if ctx.Err() == nil {
			s.log.Warn("not pinging the watchdog", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe asks every watched loop, at once, whether it is alive, and logs
// when they all answer again.
func (s *service) probe(ctx context.Context, within time.Duration) error {
	err := s.check(ctx, within)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.failing != "" {
		s.log.Info("pinging the watchdog again: every loop answers")
	}
	s.failing = ""
	if err != nil {
		s.failing = err.Error()
	}
	return err
}

// check asks every watched loop, at once, whether it is alive: the
// watchdog's pings and /liveness.
func (s *service) check(ctx context.Context, within time.Duration) error {
	s.mu.Lock()
	probes := append([]probe(nil), s.probes...)
	s.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			if err := p.alive(pctx); err != nil {
				errs[i] = fmt.Errorf("%s does not answer within %s: %w", p.name, within, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// clusterStep says what the cluster's start is about to do.
func (n *node) clusterStep() string {
	if id, known, err := cluster.LoadIdentity(n.cfg.DataDir); err == nil && known {
		return fmt.Sprintf("resuming node %s of cluster %s: starting etcd and gossip", id.Name, id.ClusterID)
	}
	if n.cfg.Join != "" {
		return "joining the cluster of " + n.cfg.Join
	}
	return "founding a new cluster"
}

// readyLoop says the node is ready once the agent has programmed the
// dataplane (from its state cache or the datastore; the API already
// answers), then keeps the service's status up to date.
func (n *node) readyLoop(ctx context.Context, cl clusterPart, id cluster.Identity) {
	select {
	case <-n.agent.Programmed():
	case <-ctx.Done():
		return
	}
	from := "the datastore"
	if n.agent.FirstProgram().FromSnapshot {
		from = "the state cache"
	}
	n.log.Info("ready: the API answers and the dataplane is programmed", "from", from)
	n.svc.ready("ready: node %s (%s) of cluster %s; dataplane programmed from %s", id.Name, cl.Role(), id.ClusterID, from)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.svc.setStatus("%s", n.summary(cl, id))
		}
	}
}

// summary is the running node's status in one line.
func (n *node) summary(cl clusterPart, id cluster.Identity) string {
	sync, last := n.agent.Sync(), n.agent.Last()
	ds := "datastore in sync"
	switch {
	case cl.DiskFull() != "":
		ds = "data dir full: etcd member stopped"
	case !sync.Live:
		ds = "datastore unreachable: enforcing the last state"
	}
	dp := fmt.Sprintf("dataplane programmed (%d workloads)", last.Endpoints)
	if last.Err != nil {
		dp = "dataplane: " + last.Err.Error()
	}
	return fmt.Sprintf("running: node %s (%s) of cluster %s; %s; %s", id.Name, cl.Role(), id.ClusterID, ds, dp)
}

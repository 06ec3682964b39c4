// Package workload wires workloads into this host: their network
// namespace, addresses from IPAM, the veth pair and their
// WorkloadEndpoint. It is the one code path behind `calico workload add`,
// the CNI plugin and the Docker driver.
package workload

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"calico/internal/quote"
	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/ipam"
	"calico/store/selector"

	"github.com/google/uuid"
)

// Orchestrator is the orchestrator name of workloads added with
// `calico workload add`.
const Orchestrator = "calico"

// annotationNetNS records a network namespace given with --netns.
const annotationNetNS = "projectcalico.org/netns"

var (
	workloadNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	profileNameRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// Dataplane is what the service needs of the agent.
type Dataplane interface {
	// WaitApplied waits until the dataplane is programmed from a state at
	// least as new as datastore revision rev.
	WaitApplied(ctx context.Context, rev int64) error
	// BlocksMayHaveChanged says that this host's IPAM blocks may have
	// changed (an allocation here may have claimed one).
	BlocksMayHaveChanged()
	// Applied is the datastore revision the dataplane was last programmed
	// from.
	Applied() int64
}

// Service adds, lists and removes the workloads of this host. Changes to
// one workload are serialised; different workloads proceed at once.
type Service struct {
	Node      string
	DataDir   string
	Store     *store.Store
	IPAM      *ipam.IPAM
	Dataplane Dataplane
	Log       *slog.Logger

	mu    sync.Mutex
	locks map[string]*lock
}

type lock struct {
	sync.Mutex
	users int
}

// lock serialises the changes to one workload; the returned func unlocks.
func (s *Service) lock(ns, name string) func() {
	key := ns + "/" + name
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*lock{}
	}
	l := s.locks[key]
	if l == nil {
		l = &lock{}
		s.locks[key] = l
	}
	l.users++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.locks, key)
		}
		s.mu.Unlock()
	}
}

// hostIface is the host-side interface name of a workload: "cali" and 11
// hex digits of a hash of its namespace and name, as Calico names pods.
func hostIface(ns, name string) string {
	sum := sha1.Sum([]byte(ns + "." + name))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

// HandleOf is the IPAM handle that holds the addresses of a workload
// added by `calico workload add`.
func HandleOf(w *store.WorkloadEndpoint) string { return "calico." + w.Spec.ContainerID }

// netnsMarker records that the node made a workload's network namespace,
// so that removing the workload removes it too (and only then).
func (s *Service) netnsMarker(name string) string { return filepath.Join(s.DataDir, "netns", name) }

// Add wires a new workload into this host: its network namespace (made
// unless one is given), addresses from IPAM (or the given ones), the veth
// pair, its WorkloadEndpoint, and any missing profile. It returns once the
// dataplane is programmed for it. A failure undoes every step.
func (s *Service) Add(ctx context.Context, req api.WorkloadAdd) (*api.Workload, error) {
	if req.Namespace == "" {
		req.Namespace = "default"
	}
	if len(req.Profiles) == 0 {
		req.Profiles = []string{"default"}
	}
	if err := checkAdd(req); err != nil {
		return nil, err
	}
	defer s.lock(req.Namespace, req.Name)()
	ph := newPhases()
	defer func() { s.Log.Debug("workload add", "workload", req.Name, "phases", ph.String()) }()

	weName := store.WorkloadEndpointName(s.Node, Orchestrator, req.Name, "eth0")
	if old, err := store.GetOf[*store.WorkloadEndpoint](ctx, s.Store, req.Namespace, weName); err == nil {
		return s.again(ctx, req, old)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err := s.settle(ctx, req.Namespace, weName); err != nil {
		return nil, err
	}
	w := s.endpoint(req, weName)
	in := &intent{Op: "add", Namespace: req.Namespace, Endpoint: weName, Workload: req.Name,
		HostIface: w.Spec.InterfaceName, Handle: HandleOf(w), Started: time.Now().UTC()}
	if req.NetNS == "" {
		in.NetNS = req.Name
	}
	if err := s.record(in); err != nil {
		return nil, err
	}
	u := &undo{}
	defer func() {
		if u.run() {
			s.forget(req.Namespace, weName)
		}
	}()
	u.add(func() { veth.Remove(w.Spec.InterfaceName) }) // whatever part of it was made

	netnsPath, err := s.netns(req, u)
	if err != nil {
		return nil, err
	}
	ph.mark("netns")
	for _, p := range req.Profiles {
		made, err := s.ensureProfile(ctx, p, u)
		if err != nil {
			return nil, err
		}
		if made {
			in.Profiles = append(in.Profiles, p)
			if err := s.record(in); err != nil {
				return nil, err
			}
		}
	}
	ph.mark("profiles")

	handle := HandleOf(w)
	u.add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.IPAM.ReleaseByHandle(ctx, handle)
	})
	addrs, err := s.assign(ctx, req, handle)
	if err != nil {
		return nil, err
	}
	ph.mark("ipam")
	for _, a := range addrs {
		w.Spec.IPNetworks = append(w.Spec.IPNetworks, netip.PrefixFrom(a, a.BitLen()).String())
	}

	mac, err := veth.Add(veth.Spec{NetNS: netnsPath, HostIface: w.Spec.InterfaceName, Iface: "eth0", Addrs: addrs})
	if err != nil {
		return nil, fmt.Errorf("wiring workload %s: %w", req.Name, err)
	}
	ph.mark("veth")
	w.Spec.MAC = mac.String()

	s.Dataplane.BlocksMayHaveChanged() // before the endpoint's event can start a pass
	if err := s.Store.Create(ctx, w); err != nil {
		return nil, err
	}
	ph.mark("endpoint")
	u.done()
	s.forget(req.Namespace, weName)
	out := toWorkload(w, netnsPath)
	rev, _ := store.ParseRevision(w.Metadata.ResourceVersion)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	programmed := s.Dataplane.WaitApplied(wctx, rev) == nil
	out.Programmed = &programmed
	ph.mark("dataplane")
	return out, nil
}

// netns returns the path of the workload's network namespace: the given
// one, or one made for it (and recorded as ours).
func (s *Service) netns(req api.WorkloadAdd, u *undo) (string, error) {
	if req.NetNS != "" {
		if _, err := os.Stat(req.NetNS); err != nil {
			return "", api.Errorf(api.BadRequest, "network namespace %s: %w", req.NetNS, err)
		}
		return req.NetNS, nil
	}
	if _, err := os.Stat(veth.NetNSPath(req.Name)); err == nil {
		return "", api.Errorf(api.Conflict, "network namespace %s already exists (give --netns to use an existing one)", req.Name)
	}
	// The marker first: a node killed right after making the namespace
	// knows it is its own.
	marker := s.netnsMarker(req.Name)
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(marker, []byte(req.Namespace+"/"+req.Name+"\n"), 0o600); err != nil {
		return "", err
	}
	u.add(func() { os.Remove(marker) })
	if err := veth.CreateNetNS(req.Name); err != nil {
		return "", api.Errorf(api.Conflict, "%w (give --netns to use an existing one)", err)
	}
	u.add(func() { veth.DeleteNetNS(req.Name) })
	return veth.NetNSPath(req.Name), nil
}

// endpoint is the WorkloadEndpoint of a new workload, without addresses.
func (s *Service) endpoint(req api.WorkloadAdd, name string) *store.WorkloadEndpoint {
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name, w.Metadata.Namespace, w.Metadata.Labels = name, req.Namespace, req.Labels
	w.Spec = store.WorkloadEndpointSpec{
		Orchestrator:  Orchestrator,
		Workload:      req.Name,
		Node:          s.Node,
		ContainerID:   strings.ReplaceAll(uuid.NewString(), "-", "")[:16],
		Endpoint:      "eth0",
		Profiles:      req.Profiles,
		InterfaceName: hostIface(req.Namespace, req.Name),
	}
	if req.NetNS != "" {
		w.Metadata.Annotations = map[string]string{annotationNetNS: req.NetNS}
	}
	return w
}

// undo is a stack of steps that undo what a failed request did.
type undo struct {
	steps []func()
	kept  bool
}

func (u *undo) add(f func()) { u.steps = append(u.steps, f) }

// done keeps what was done: nothing is undone.
func (u *undo) done() { u.steps, u.kept = nil, true }

// run undoes the steps unless done was called; it reports whether it did.
func (u *undo) run() bool {
	for i := len(u.steps) - 1; i >= 0; i-- {
		u.steps[i]()
	}
	return !u.kept
}

func checkAdd(req api.WorkloadAdd) error {
	if !workloadNameRE.MatchString(req.Name) || len(req.Name) > 63 {
		return api.Errorf(api.BadRequest, "workload name %q must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", quote.Clip(req.Name))
	}
	if !workloadNameRE.MatchString(req.Namespace) || len(req.Namespace) > 63 {
		return api.Errorf(api.BadRequest, "namespace %q must be 1-63 lower-case letters, digits and '-'", quote.Clip(req.Namespace))
	}
	for _, p := range req.Profiles {
		if !profileNameRE.MatchString(p) {
			return api.Errorf(api.BadRequest, "profile name %q must be lower-case letters, digits, '-' and '.'", quote.Clip(p))
		}
	}
	for k, v := range req.Labels {
		if err := selector.ValidateKey(k); err != nil {
			return api.Errorf(api.BadRequest, "%w", err)
		}
		if err := selector.ValidateValue(v); err != nil {
			return api.Errorf(api.BadRequest, "label %s: %w", k, err)
		}
	}
	seen := map[int]bool{}
	for _, ip := range req.IPs {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return api.Errorf(api.BadRequest, "--ip %q is not an address", quote.Clip(ip))
		}
		v := 4
		if a.Is6() && !a.Is4In6() {
			v = 6
		}
		if seen[v] {
			return api.Errorf(api.BadRequest, "--ip: give at most one IPv%d address", v)
		}
		seen[v] = true
	}
	for _, p := range req.Pools {
		if _, err := store.ParseCIDR(p); err != nil {
			return api.Errorf(api.BadRequest, "--pool %v", err)
		}
	}
	return nil
}

// assign takes the given addresses, or one address of each family that
// has an enabled pool for this node.
func (s *Service) assign(ctx context.Context, req api.WorkloadAdd, handle string) ([]netip.Addr, error) {
	pools, err := s.eligiblePools(ctx)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{"node": s.Node, "namespace": req.Namespace, "workload": req.Name}
	if len(req.IPs) > 0 {
		return s.assignGiven(ctx, req.IPs, pools, handle, attrs)
	}
	if len(req.Pools) > 0 {
		if pools, err = choosePools(req.Pools, pools); err != nil {
			return nil, err
		}
	}
	var out []netip.Addr
	for _, v4 := range []bool{true, false} {
		fam := slices.DeleteFunc(slices.Clone(pools), func(p ipam.Pool) bool { return p.CIDR.Addr().Is4() != v4 })
		if len(fam) == 0 {
			continue
		}
		a, err := s.IPAM.AutoAssign(ctx, handle, s.Node, fam, attrs)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, api.Errorf(api.BadRequest, "no enabled IP pool applies to this node (see `calico pool list`)")
	}
	return out, nil
}

// assignGiven takes the addresses a request names.
func (s *Service) assignGiven(ctx context.Context, ips []string, pools []ipam.Pool, handle string, attrs map[string]string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, ip := range ips {
		a := netip.MustParseAddr(ip).Unmap() // checkAdd checked it
		i := slices.IndexFunc(pools, func(p ipam.Pool) bool { return p.CIDR.Contains(a) })
		if i < 0 {
			return nil, api.Errorf(api.BadRequest, "address %s is not in any enabled IP pool", a)
		}
		if err := s.IPAM.Assign(ctx, a, handle, s.Node, pools[i], attrs); err != nil {
			if errors.Is(err, ipam.ErrInUse) {
				return nil, api.Errorf(api.Conflict, "address %s is already in use", a)
			}
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// choosePools narrows the eligible pools to those a request names.
func choosePools(names []string, pools []ipam.Pool) ([]ipam.Pool, error) {
	var chosen []ipam.Pool
	for _, c := range names {
		cidr, _ := store.ParseCIDR(c) // checkAdd checked it
		i := slices.IndexFunc(pools, func(p ipam.Pool) bool { return p.CIDR == cidr })
		if i < 0 {
			return nil, api.Errorf(api.BadRequest, "--pool %s is not an enabled IP pool (see `calico pool list`)", cidr)
		}
		chosen = append(chosen, pools[i])
	}
	return chosen, nil
}

// eligiblePools are the enabled pools whose nodeSelector selects this
// node, in name order.
func (s *Service) eligiblePools(ctx context.Context) ([]ipam.Pool, error) {
	pools, err := store.ListOf[*store.IPPool](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	var labels map[string]string
	if n, err := store.GetOf[*store.Node](ctx, s.Store, "", s.Node); err == nil {
		labels = n.Metadata.Labels
	}
	var out []ipam.Pool
	for _, p := range pools {
		cidr, err := store.ParseCIDR(p.Spec.CIDR)
		if err != nil || p.Spec.Disabled {
			continue
		}
		if sel, err := selector.Parse(p.Spec.NodeSelector); err != nil || !sel.Evaluate(labels) {
			continue
		}
		out = append(out, ipam.Pool{CIDR: cidr, BlockSize: p.Spec.BlockSize})
	}
	return out, nil
}

// ensureProfile creates a missing profile with the classic semantics: its
// members may reach each other, and their egress is open. A profile made
// here is removed again if the workload add fails (unless another
// workload uses it by then); made says whether it made one.
func (s *Service) ensureProfile(ctx context.Context, name string, u *undo) (made bool, err error) {
	_, err = store.GetOf[*store.Profile](ctx, s.Store, "", name)
	if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	p := store.ClassicProfile(name)
	err = s.Store.Create(ctx, p)
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	u.add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Store.Delete(ctx, store.IDOf(p), p.Metadata.ResourceVersion)
	})
	return true, nil
}

// again answers an add of a workload that exists: the same request again
// (a client retrying after its connection broke) gets the workload; a
// different one is a conflict.
func (s *Service) again(ctx context.Context, req api.WorkloadAdd, old *store.WorkloadEndpoint) (*api.Workload, error) {
	same := slices.Equal(old.Spec.Profiles, req.Profiles) && maps.Equal(old.Metadata.Labels, req.Labels) &&
		old.Metadata.Annotations[annotationNetNS] == req.NetNS
	for _, ip := range req.IPs {
		a := netip.MustParseAddr(ip).Unmap() // checkAdd checked it
		same = same && slices.Contains(old.Spec.IPNetworks, netip.PrefixFrom(a, a.BitLen()).String())
	}
	if !same {
		return nil, api.Errorf(api.Conflict, "workload %s already exists in namespace %s on this node", req.Name, req.Namespace)
	}
	netns := req.NetNS
	if netns == "" {
		netns = veth.NetNSPath(req.Name)
	}
	out := toWorkload(old, netns)
	rev, _ := store.ParseRevision(old.Metadata.ResourceVersion)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	programmed := s.Dataplane.WaitApplied(wctx, rev) == nil
	out.Programmed = &programmed
	return out, nil
}

// settle finishes or undoes a change to the workload that a previous run
// left half done, before a new one starts.
func (s *Service) settle(ctx context.Context, ns, endpoint string) error {
	b, err := os.ReadFile(s.intentPath(ns, endpoint))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	in := &intent{}
	if err == nil {
		err = json.Unmarshal(b, in)
	}
	if err != nil {
		s.forget(ns, endpoint)
		return nil
	}
	switch in.Op {
	case "add":
		err = s.undoAdd(ctx, in)
	default:
		err = s.finishRemove(ctx, in, nil)
	}
	if err != nil {
		return fmt.Errorf("cleaning up after an earlier change to the workload cut short: %w", err)
	}
	s.forget(ns, endpoint)
	return nil
}

// Remove undoes Add. A workload whose endpoint is gone already (deleted
// by another tool, or an add cut short) still has what is left of it
// removed: its interface, the namespace the node made, its addresses.
func (s *Service) Remove(ctx context.Context, ns, name string) error {
	if ns == "" {
		ns = "default"
	}
	defer s.lock(ns, name)()
	weName := store.WorkloadEndpointName(s.Node, Orchestrator, name, "eth0")
	if err := s.settle(ctx, ns, weName); err != nil {
		return err
	}
	w, err := store.GetOf[*store.WorkloadEndpoint](ctx, s.Store, ns, weName)
	if errors.Is(err, store.ErrNotFound) {
		return s.removeRemains(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	in := &intent{Op: "remove", Namespace: ns, Endpoint: weName, Workload: name,
		HostIface: w.Spec.InterfaceName, Handle: HandleOf(w), Started: time.Now().UTC()}
	if _, err := os.Stat(s.netnsMarker(name)); err == nil {
		in.NetNS = name
	}
	if err := s.record(in); err != nil {
		return err
	}
	if err := s.finishRemove(ctx, in, w); err != nil {
		return err // the intent stays: the next remove or start finishes it
	}
	s.forget(ns, weName)
	return nil
}

// removeRemains removes what is left of a workload whose endpoint is
// gone; a workload of which nothing is left does not exist.
func (s *Service) removeRemains(ctx context.Context, ns, name string) error {
	iface := hostIface(ns, name)
	marker, mine := s.netnsMarker(name), false
	if b, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(b)) == ns+"/"+name {
		mine = true
	}
	handles, err := s.IPAM.HandlesOf(ctx, map[string]string{"node": s.Node, "namespace": ns, "workload": name})
	if err != nil {
		return err
	}
	if !veth.Exists(iface) && !mine && len(handles) == 0 {
		return api.Errorf(api.NotFound, "workload %s does not exist in namespace %s on this node", name, ns)
	}
	s.Log.Info("removing what is left of a workload whose endpoint is gone", "workload", ns+"/"+name)
	errs := []error{veth.Remove(iface)}
	for _, h := range handles {
		if _, err := s.IPAM.ReleaseByHandle(ctx, h); err != nil {
			errs = append(errs, err)
		}
	}
	if mine {
		errs = append(errs, s.removeNetNS(name, ns))
	}
	return errors.Join(errs...)
}

// List lists the workloads of every node. Programmed is set for this
// host's workloads.
func (s *Service) List(ctx context.Context) ([]api.Workload, error) {
	weps, err := store.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	applied := s.Dataplane.Applied()
	out := []api.Workload{}
	for _, w := range weps {
		path := w.Metadata.Annotations[annotationNetNS]
		if path == "" && w.Spec.Node == s.Node && w.Spec.Orchestrator == Orchestrator {
			path = veth.NetNSPath(w.Spec.Workload)
		}
		wl := toWorkload(w, path)
		if w.Spec.Node == s.Node {
			rev, _ := store.ParseRevision(w.Metadata.ResourceVersion)
			programmed := applied >= rev
			wl.Programmed = &programmed
		}
		out = append(out, *wl)
	}
	slices.SortFunc(out, func(a, b api.Workload) int {
		return strings.Compare(a.Node+"/"+a.Namespace+"/"+a.Name, b.Node+"/"+b.Namespace+"/"+b.Name)
	})
	return out, nil
}

func toWorkload(w *store.WorkloadEndpoint, netns string) *api.Workload {
	out := &api.Workload{
		Name: w.Spec.Workload, Namespace: w.Metadata.Namespace, Node: w.Spec.Node,
		Interface: w.Spec.InterfaceName, Profiles: w.Spec.Profiles, Labels: w.Metadata.Labels,
		NetNS: netns, Endpoint: w.Metadata.Name,
	}
	for _, n := range w.Spec.IPNetworks {
		if p, err := store.ParseCIDR(n); err == nil {
			out.Addresses = append(out.Addresses, p.Addr())
		}
	}
	return out
}

// phases times the steps of one request, for the debug log.
type phases struct {
	last  time.Time
	steps []string
}

func newPhases() *phases { return &phases{last: time.Now()} }

func (p *phases) mark(step string) {
	now := time.Now()
	p.steps = append(p.steps, fmt.Sprintf("%s=%s", step, now.Sub(p.last).Round(10*time.Microsecond)))
	p.last = now
}

func (p *phases) String() string { return strings.Join(p.steps, " ") }

// Package workload wires workloads into this host: their network
// namespace, addresses from IPAM, the veth pair and their
// WorkloadEndpoint. It is the one code path behind `calico workload add`,
// the CNI plugin and the Docker driver.
package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// Dataplane is what the service needs of the agent.
type Dataplane interface {
	// WaitApplied waits until the dataplane is programmed from a state at
	// least as new as datastore revision rev.
	WaitApplied(ctx context.Context, rev int64) error
	// Applied is the datastore revision the dataplane was last programmed
	// from.
	Applied() int64
}

// Service adds, lists and removes the workloads of this host. Changes to
// one workload are serialised; different workloads proceed at once.
type Service struct {
	Node      string
	DataDir   string
	Store     *etcdv3.Store
	IPAM      *ipam.IPAM
	Dataplane Dataplane
	// MTU is the MTU of the interfaces the service makes or attaches
	// when the request gives none; 0 leaves the kernel's (or the
	// interface's own).
	MTU int
	Log *slog.Logger

	mu       sync.Mutex
	locks    map[string]*lock
	stopping bool           // Wait was called
	unwiring sync.WaitGroup // unwireLater's
}

type lock struct {
	sync.Mutex
	users int
}

// lock serialises the changes to one workload (keyed by its endpoint's
// name, or to one IPAM handle); the returned func unlocks.
func (s *Service) lock(key string) func() {
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

// netnsMarker records that the node made a workload's network namespace,
// so that removing the workload removes it too (and only then).
func (s *Service) netnsMarker(name string) string { return filepath.Join(s.DataDir, "netns", name) }

// Add wires a new workload into this host: its network namespace (made
// unless one is given), addresses from IPAM (or the given ones), the veth
// pair (or an existing interface attached: a VM's tap, existing.go), its
// WorkloadEndpoint, and any missing profile. It returns once the
// dataplane is programmed for it. A failure undoes every step. The CLI
// names a workload; a CNI ADD gives its attachment, Docker's driver its
// endpoint (identify). A Docker endpoint's interface is handed over:
// Docker moves it into the container and configures it.
func (s *Service) Add(ctx context.Context, req api.WorkloadAdd) (*api.Workload, error) {
	id, err := s.identify(&req)
	if err != nil {
		return nil, err
	}
	defer s.lock(id.endpoint)()
	if id.attach {
		defer s.lock("iface/" + id.hostIface)() // one workload per interface
	}
	ph := newPhases()
	defer func() {
		s.Log.Debug("workload add", "workload", id.workload, "endpoint", id.endpoint, "phases", ph.String())
	}()

	if old, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, id.namespace, id.endpoint); err == nil {
		return s.again(ctx, req, id, old)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err := s.settle(ctx, id.namespace, id.endpoint); err != nil {
		return nil, err
	}
	if err := s.checkAttach(ctx, req, id); err != nil {
		return nil, err
	}
	w, in := s.endpoint(req, id), addIntent(req, id)
	if err := s.record(in); err != nil {
		return nil, err
	}
	u := &undo{}
	defer func() {
		if u.run() {
			s.forget(id.namespace, id.endpoint)
		}
	}()
	u.add(func() { unwire(id.hostIface, id.attach) }) // whatever part of it was made

	spec := veth.Spec{HostIface: id.hostIface, Iface: id.handOver, MTU: req.MTU}
	if id.handOver == "" && !id.attach {
		if spec.NetNS, err = s.netns(req, u); err != nil {
			return nil, err
		}
		spec.Iface = id.iface
	}
	ph.mark("netns")
	if err := s.ensureProfiles(ctx, req.Profiles, in, u); err != nil {
		return nil, err
	}
	ph.mark("profiles")
	if spec.Addrs, err = s.addresses(ctx, req, id, u); err != nil {
		return nil, err
	}
	ph.mark("ipam")
	for _, a := range spec.Addrs {
		w.Spec.IPNetworks = append(w.Spec.IPNetworks, netip.PrefixFrom(a, a.BitLen()).String())
	}
	if w.Spec.MAC, err = s.wire(req, id, spec); err != nil {
		return nil, err
	}
	ph.mark("veth")

	if err := s.Store.Create(ctx, w); err != nil {
		return nil, err
	}
	ph.mark("endpoint")
	u.done()
	s.forget(id.namespace, id.endpoint)
	out := toWorkload(w, w.Metadata.Annotations[annotationNetNS])
	if req.NetNS == "" {
		out.NetNS = spec.NetNS
	}
	s.waitProgrammed(ctx, w, out)
	ph.mark("dataplane")
	return out, nil
}

// addIntent is the intent of an add: what it makes, to be undone if
// it is cut short.
func addIntent(req api.WorkloadAdd, id *ident) *intent {
	in := &intent{Op: "add", Namespace: id.namespace, Endpoint: id.endpoint, Workload: id.workload,
		HostIface: id.hostIface, Attached: id.attach, Handle: id.handle, Started: time.Now().UTC()}
	if req.NetNS == "" && id.handOver == "" && !id.attach {
		in.NetNS = req.Name // the namespace the node makes
	}
	return in
}

// addresses takes the addresses of an add: from IPAM under the
// workload's handle (released again if the add fails), or those the
// front end's IPAM holds for it (Allocated), which stay the front end's.
func (s *Service) addresses(ctx context.Context, req api.WorkloadAdd, id *ident, u *undo) ([]netip.Addr, error) {
	if req.Allocated {
		return s.allocated(ctx, req.IPs)
	}
	u.add(func() { s.release(id.handle) })
	attrs := map[string]string{"node": s.Node, "namespace": id.namespace, "workload": id.workload}
	if id.orchestrator == OrchestratorCNI {
		attrs = s.cniAttrs(id, id.workload)
	}
	return s.assign(ctx, allocation{ips: req.IPs, pools: req.Pools, families: req.Families, attrs: attrs, flags: id.flags}, id.handle)
}

// wire makes the workload's interface: a veth pair (into its namespace,
// or handed over), or the host side's treatment for an attached
// interface. It returns the MAC its endpoint records: the workload
// side's, or for an attached interface the guest's (--mac; none
// without). The service's MTU applies when the request gives none.
func (s *Service) wire(req api.WorkloadAdd, id *ident, spec veth.Spec) (string, error) {
	if spec.MTU == 0 {
		spec.MTU = s.MTU
	}
	if id.attach {
		if err := veth.Attach(id.hostIface, spec.MTU); err != nil {
			return "", fmt.Errorf("attaching interface %s to workload %s: %w", id.hostIface, id.workload, err)
		}
		return req.MAC, nil
	}
	mac, err := veth.Add(spec)
	if errors.Is(err, veth.ErrIfaceExists) {
		return "", api.FieldErrorf(api.Conflict, "interface", "%v", err)
	}
	if err != nil {
		return "", fmt.Errorf("wiring workload %s: %w", id.workload, err)
	}
	return mac.String(), nil
}

// ensureProfiles makes the missing profiles of an add, recording each
// it made in the add's intent (to be removed if the add is undone).
func (s *Service) ensureProfiles(ctx context.Context, profiles []string, in *intent, u *undo) error {
	for _, p := range profiles {
		made, err := s.ensureProfile(ctx, p, u)
		if err != nil {
			return err
		}
		if made {
			in.Profiles = append(in.Profiles, p)
			if err := s.record(in); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitProgrammed waits (up to 10 s) until the dataplane is programmed
// for w, and says whether it is and whether w is up.
func (s *Service) waitProgrammed(ctx context.Context, w *store.WorkloadEndpoint, out *api.Workload) {
	ls := openLinks()
	out.State, out.Why = stateOf(w, ls)
	ls.close()
	rev, _ := store.ParseRevision(w.Metadata.ResourceVersion)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	programmed := s.Dataplane.WaitApplied(wctx, rev) == nil
	out.Programmed = &programmed
}

// release frees a handle's addresses, for undoing a failed request.
func (s *Service) release(handle string) {
	if handle == "" {
		return
	}
	ctx, cancel := cleanupContext()
	defer cancel()
	s.IPAM.ReleaseByHandle(ctx, handle)
}

// cleanupContext bounds the undoing of a failed request, which goes on
// when the request's own context is done.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// netns returns the path of the workload's network namespace: the given
// one, or one made for it (and recorded as ours).
func (s *Service) netns(req api.WorkloadAdd, u *undo) (string, error) {
	if req.NetNS != "" {
		path := openNetNS(req.NetNS, req.NetNSHandle)
		if _, err := os.Stat(path); err != nil {
			return "", api.FieldErrorf(api.BadRequest, "netns", "network namespace %s: %w", req.NetNS, err)
		}
		return path, nil
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
func (s *Service) endpoint(req api.WorkloadAdd, id *ident) *store.WorkloadEndpoint {
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name, w.Metadata.Namespace, w.Metadata.Labels = id.endpoint, id.namespace, req.Labels
	w.Spec = store.WorkloadEndpointSpec{
		Orchestrator:  id.orchestrator,
		Workload:      id.workload,
		Node:          s.Node,
		ContainerID:   id.containerID,
		Endpoint:      id.iface,
		Profiles:      req.Profiles,
		InterfaceName: id.hostIface,
	}
	if req.NetNS != "" {
		w.Metadata.Annotations = map[string]string{annotationNetNS: req.NetNS}
	}
	if id.attach {
		w.Metadata.Annotations = map[string]string{store.AnnotationAttached: id.kind}
	}
	if id.network != "" {
		if w.Metadata.Annotations == nil {
			w.Metadata.Annotations = map[string]string{}
		}
		w.Metadata.Annotations[annotationNetwork] = id.network
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

// again answers an add of a workload that exists: the same request again
// (a client retrying after its connection broke) gets the workload; a
// different one is a conflict.
func (s *Service) again(ctx context.Context, req api.WorkloadAdd, id *ident, old *store.WorkloadEndpoint) (*api.Workload, error) {
	same := slices.Equal(old.Spec.Profiles, req.Profiles) && maps.Equal(store.UserLabels(old.Metadata.Labels), store.UserLabels(req.Labels)) &&
		old.Metadata.Annotations[annotationNetNS] == req.NetNS && (attachedKind(old) != "") == id.attach &&
		(!id.attach || old.Spec.InterfaceName == id.hostIface && old.Spec.MAC == req.MAC)
	for _, ip := range req.IPs {
		a := netip.MustParseAddr(ip).Unmap() // checkAdd checked it
		same = same && slices.Contains(old.Spec.IPNetworks, netip.PrefixFrom(a, a.BitLen()).String())
	}
	switch {
	case !same && id.orchestrator == OrchestratorLibnetwork:
		return nil, api.Errorf(api.Conflict, "Docker endpoint %s exists already on this node, with other addresses or network", id.iface)
	case !same && id.orchestrator == OrchestratorCNI:
		return nil, api.FieldErrorf(api.Conflict, "interface", "container %s already has interface %s on network %s (in %s)", id.containerID, id.iface, id.network, old.Metadata.Annotations[annotationNetNS])
	case !same:
		return nil, api.Errorf(api.Conflict, "workload %s already exists in namespace %s on this node", req.Name, req.Namespace)
	}
	netns := req.NetNS
	if netns == "" && id.handOver == "" && !id.attach {
		netns = veth.NetNSPath(req.Name)
	}
	out := toWorkload(old, netns)
	s.waitProgrammed(ctx, old, out)
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

// RemoveEndpoint removes one of this host's endpoints as its front end
// would: a workload of `calico workload add` as Remove does, a CNI
// attachment or a Docker endpoint as their DEL does (RemoveAttachment:
// the interface, the endpoint and the addresses of the service's
// handle; a Docker endpoint's addresses are its IPAM driver's). An
// endpoint the node did not make (MadeHere) is refused.
func (s *Service) RemoveEndpoint(ctx context.Context, w *store.WorkloadEndpoint) error {
	if !s.MadeHere(w) {
		return fmt.Errorf("endpoint %s/%s (node %s, orchestrator %q) was not made by this host's node", w.Metadata.Namespace, w.Metadata.Name, w.Spec.Node, w.Spec.Orchestrator)
	}
	switch w.Spec.Orchestrator {
	case OrchestratorCNI:
		return s.RemoveAttachment(ctx, api.Attachment{ContainerID: w.Spec.ContainerID, Interface: w.Spec.Endpoint,
			Network: w.Metadata.Annotations[annotationNetwork], Namespace: w.Metadata.Namespace})
	case OrchestratorLibnetwork:
		return s.RemoveAttachment(ctx, api.Attachment{Orchestrator: OrchestratorLibnetwork, ContainerID: w.Spec.Endpoint})
	}
	return s.Remove(ctx, w.Metadata.Namespace, w.Spec.Workload)
}

// MadeHere says whether the node of this host made w (through `calico
// workload add`, CNI or Docker), rather than `calico apply`.
func (s *Service) MadeHere(w *store.WorkloadEndpoint) bool {
	switch w.Spec.Orchestrator {
	case Orchestrator, OrchestratorCNI, OrchestratorLibnetwork:
		return w.Spec.Node == s.Node
	}
	return false
}

// Remove undoes Add. A workload whose endpoint is gone already (deleted
// by another tool, or an add cut short) still has what is left of it
// removed: its interface, the namespace the node made, its addresses.
func (s *Service) Remove(ctx context.Context, ns, name string) error {
	if ns == "" {
		ns = "default"
	}
	weName := store.WorkloadEndpointName(s.Node, Orchestrator, name, "eth0")
	defer s.lock(weName)()
	if err := s.settle(ctx, ns, weName); err != nil {
		return err
	}
	w, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, ns, weName)
	if errors.Is(err, store.ErrNotFound) {
		return s.removeRemains(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	in := &intent{Op: "remove", Namespace: ns, Endpoint: weName, Workload: name,
		HostIface: w.Spec.InterfaceName, Attached: attachedKind(w) != "", Handle: HandleOf(w), Started: time.Now().UTC()}
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
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	applied := s.Dataplane.Applied()
	ls := openLinks()
	defer ls.close()
	out := []api.Workload{}
	for _, w := range weps {
		path := w.Metadata.Annotations[annotationNetNS]
		if path == "" && w.Spec.Node == s.Node && w.Spec.Orchestrator == Orchestrator && attachedKind(w) == "" {
			path = veth.NetNSPath(w.Spec.Workload)
		}
		wl := toWorkload(w, path)
		if w.Spec.Node == s.Node {
			rev, _ := store.ParseRevision(w.Metadata.ResourceVersion)
			programmed := applied >= rev
			wl.Programmed = &programmed
			wl.State, wl.Why = stateOf(w, ls)
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
		Interface: w.Spec.InterfaceName, Profiles: w.Spec.Profiles, Labels: store.UserLabels(w.Metadata.Labels),
		NetNS: netns, Endpoint: w.Metadata.Name,
	}
	if w.Spec.Orchestrator != Orchestrator { // the CLI's workloads show as they always have
		out.Orchestrator, out.ContainerID, out.WorkloadInterface, out.MAC = w.Spec.Orchestrator, w.Spec.ContainerID, w.Spec.Endpoint, w.Spec.MAC
	}
	if out.Attached = attachedKind(w); out.Attached != "" {
		out.MAC = w.Spec.MAC // the guest's
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

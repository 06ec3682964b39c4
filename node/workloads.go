package node

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/ipam"
	"calico/store/selector"
)

// Orchestrator is the orchestrator name of workloads added with
// `calico workload add`.
const Orchestrator = "calico"

var workloadNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// hostIface is the host-side interface name of a workload: "cali" and 11
// hex digits of a hash of its namespace and name, as Calico names pods.
func hostIface(ns, name string) string {
	sum := sha1.Sum([]byte(ns + "." + name))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

func handleOf(w *store.WorkloadEndpoint) string { return "calico." + w.Spec.ContainerID }

// netnsMarker records that the node made a workload's network namespace,
// so that removing the workload removes it too (and only then).
func (s *Server) netnsMarker(name string) string { return filepath.Join(s.DataDir, "netns", name) }

// AddWorkload wires a new workload into this host: its network namespace
// (made unless one is given), addresses from IPAM (or the given ones),
// the veth pair, its WorkloadEndpoint, and any missing profile. It returns
// once the dataplane is programmed for it. A failure undoes every step.
func (s *Server) AddWorkload(ctx context.Context, req api.WorkloadAdd) (*api.Workload, error) {
	if req.Namespace == "" {
		req.Namespace = "default"
	}
	if len(req.Profiles) == 0 {
		req.Profiles = []string{"default"}
	}
	if err := checkAdd(req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ph := newPhases()
	defer func() { s.Log.Debug("workload add", "workload", req.Name, "phases", ph.String()) }()

	weName := store.WorkloadEndpointName(s.Name, Orchestrator, req.Name, "eth0")
	if _, err := store.GetOf[*store.WorkloadEndpoint](ctx, s.Store, req.Namespace, weName); err == nil {
		return nil, fmt.Errorf("workload %s already exists in namespace %s on this node", req.Name, req.Namespace)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}

	var undo []func()
	ok := false
	defer func() {
		if !ok {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	netnsPath := req.NetNS
	if netnsPath == "" {
		if err := veth.CreateNetNS(req.Name); err != nil {
			return nil, fmt.Errorf("%w (give --netns to use an existing one)", err)
		}
		undo = append(undo, func() { veth.DeleteNetNS(req.Name) })
		marker := s.netnsMarker(req.Name)
		if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(marker, []byte(req.Namespace+"/"+req.Name+"\n"), 0o600); err != nil {
			return nil, err
		}
		undo = append(undo, func() { os.Remove(marker) })
		netnsPath = veth.NetNSPath(req.Name)
	} else if _, err := os.Stat(netnsPath); err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", netnsPath, err)
	}
	ph.mark("netns")

	for _, p := range req.Profiles {
		if err := s.ensureProfile(ctx, p); err != nil {
			return nil, err
		}
	}

	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name, w.Metadata.Namespace, w.Metadata.Labels = weName, req.Namespace, req.Labels
	w.Spec = store.WorkloadEndpointSpec{
		Orchestrator:  Orchestrator,
		Workload:      req.Name,
		Node:          s.Name,
		ContainerID:   randomHex(8),
		Endpoint:      "eth0",
		Profiles:      req.Profiles,
		InterfaceName: hostIface(req.Namespace, req.Name),
	}
	handle := handleOf(w)
	undo = append(undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.IPAM.ReleaseByHandle(ctx, handle)
	})
	ph.mark("profiles")
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
	undo = append(undo, func() { veth.Remove(w.Spec.InterfaceName) })
	ph.mark("veth")
	w.Spec.MAC = mac.String()
	if req.NetNS != "" {
		w.Metadata.Annotations = map[string]string{annotationNetNS: req.NetNS}
	}

	s.Agent.BlocksMayHaveChanged() // before the endpoint's event can start a pass
	if err := s.Store.Create(ctx, w); err != nil {
		return nil, err
	}
	ph.mark("endpoint")
	ok = true
	out := toWorkload(w, netnsPath)
	rev, _ := parseRev(w.Metadata.ResourceVersion)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out.Programmed = s.Agent.WaitApplied(wctx, rev) == nil
	ph.mark("dataplane")
	return out, nil
}

// annotationNetNS records a network namespace given with --netns.
const annotationNetNS = "projectcalico.org/netns"

func checkAdd(req api.WorkloadAdd) error {
	if !workloadNameRE.MatchString(req.Name) || len(req.Name) > 63 {
		return fmt.Errorf("workload name %q must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", req.Name)
	}
	if !workloadNameRE.MatchString(req.Namespace) || len(req.Namespace) > 63 {
		return fmt.Errorf("namespace %q must be 1-63 lower-case letters, digits and '-'", req.Namespace)
	}
	for _, p := range req.Profiles {
		if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`).MatchString(p) {
			return fmt.Errorf("profile name %q must be lower-case letters, digits, '-' and '.'", p)
		}
	}
	for k, v := range req.Labels {
		if err := selector.ValidateKey(k); err != nil {
			return err
		}
		if err := selector.ValidateValue(v); err != nil {
			return fmt.Errorf("label %s: %w", k, err)
		}
	}
	seen := map[int]bool{}
	for _, ip := range req.IPs {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("--ip %q is not an address", ip)
		}
		v := 4
		if a.Is6() && !a.Is4In6() {
			v = 6
		}
		if seen[v] {
			return fmt.Errorf("--ip: give at most one IPv%d address", v)
		}
		seen[v] = true
	}
	for _, p := range req.Pools {
		if _, err := store.ParseCIDR(p); err != nil {
			return fmt.Errorf("--pool %v", err)
		}
	}
	return nil
}

// assign takes the given addresses, or one address of each family that
// has an enabled pool for this node.
func (s *Server) assign(ctx context.Context, req api.WorkloadAdd, handle string) ([]netip.Addr, error) {
	pools, err := s.eligiblePools(ctx)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{"node": s.Name, "namespace": req.Namespace, "workload": req.Name}
	var out []netip.Addr
	if len(req.IPs) > 0 {
		for _, ip := range req.IPs {
			a := netip.MustParseAddr(ip).Unmap()
			i := slices.IndexFunc(pools, func(p ipam.Pool) bool { return p.CIDR.Contains(a) })
			if i < 0 {
				return nil, fmt.Errorf("address %s is not in any enabled IP pool", a)
			}
			if err := s.IPAM.Assign(ctx, a, handle, s.Name, pools[i], attrs); err != nil {
				if errors.Is(err, ipam.ErrInUse) {
					return nil, fmt.Errorf("address %s is already in use", a)
				}
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	if len(req.Pools) > 0 {
		var chosen []ipam.Pool
		for _, c := range req.Pools {
			cidr, _ := store.ParseCIDR(c)
			i := slices.IndexFunc(pools, func(p ipam.Pool) bool { return p.CIDR == cidr })
			if i < 0 {
				return nil, fmt.Errorf("--pool %s is not an enabled IP pool (see `calico pool list`)", cidr)
			}
			chosen = append(chosen, pools[i])
		}
		pools = chosen
	}
	for _, v4 := range []bool{true, false} {
		var fam []ipam.Pool
		for _, p := range pools {
			if p.CIDR.Addr().Is4() == v4 {
				fam = append(fam, p)
			}
		}
		if len(fam) == 0 {
			continue
		}
		a, err := s.IPAM.AutoAssign(ctx, handle, s.Name, fam, attrs)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no enabled IP pool applies to this node (see `calico pool list`)")
	}
	return out, nil
}

// eligiblePools are the enabled pools whose nodeSelector selects this
// node, in name order.
func (s *Server) eligiblePools(ctx context.Context) ([]ipam.Pool, error) {
	pools, err := store.ListOf[*store.IPPool](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	var labels map[string]string
	if n, err := store.GetOf[*store.Node](ctx, s.Store, "", s.Name); err == nil {
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
// members may reach each other, and their egress is open.
func (s *Server) ensureProfile(ctx context.Context, name string) error {
	_, err := store.GetOf[*store.Profile](ctx, s.Store, "", name)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	err = s.Store.Create(ctx, ClassicProfile(name))
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// ClassicProfile is a profile whose members may reach each other and
// anything else, and which nothing else may reach: Calico's profile of a
// network.
func ClassicProfile(name string) *store.Profile {
	p := store.KindProfile.New().(*store.Profile)
	p.Metadata.Name = name
	p.Spec.LabelsToApply = map[string]string{name: ""}
	p.Spec.Ingress = []store.Rule{{Action: "Allow", Source: store.EntityRule{Selector: "has(" + name + ")"}}}
	p.Spec.Egress = []store.Rule{{Action: "Allow"}}
	return p
}

// RemoveWorkload undoes AddWorkload.
func (s *Server) RemoveWorkload(ctx context.Context, ns, name string) error {
	if ns == "" {
		ns = "default"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	weName := store.WorkloadEndpointName(s.Name, Orchestrator, name, "eth0")
	w, err := store.GetOf[*store.WorkloadEndpoint](ctx, s.Store, ns, weName)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("workload %s does not exist in namespace %s on this node", name, ns)
	}
	if err != nil {
		return err
	}
	if _, err := s.Store.Delete(ctx, store.IDOf(w), w.Metadata.ResourceVersion); err != nil {
		return err
	}
	errs := []error{veth.Remove(w.Spec.InterfaceName)}
	if _, err := s.IPAM.ReleaseByHandle(ctx, handleOf(w)); err != nil {
		errs = append(errs, fmt.Errorf("releasing the addresses of %s: %w", name, err))
	}
	marker := s.netnsMarker(name)
	if b, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(b)) == ns+"/"+name {
		if err := veth.DeleteNetNS(name); err != nil {
			errs = append(errs, err)
		} else {
			os.Remove(marker)
		}
	}
	return errors.Join(errs...)
}

// ListWorkloads lists the workloads of every node.
func (s *Server) ListWorkloads(ctx context.Context) ([]api.Workload, error) {
	weps, err := store.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	out := []api.Workload{}
	for _, w := range weps {
		path := w.Metadata.Annotations[annotationNetNS]
		if path == "" && w.Spec.Node == s.Name && w.Spec.Orchestrator == Orchestrator {
			path = veth.NetNSPath(w.Spec.Workload)
		}
		out = append(out, *toWorkload(w, path))
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
		NetNS: netns, Endpoint: w.Metadata.Name, Programmed: true,
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

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

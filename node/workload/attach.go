package workload

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
)

// This file holds what the CNI plugin needs beyond Add: the removal,
// check and garbage collection of attachments, each named by its
// identity (container id, interface, network) rather than a workload
// name.

// findEndpoint is the endpoint of an attachment: in the namespace the
// request names or, when the runtime's arguments changed since the add,
// in any namespace. nil when there is none.
func (s *Service) findEndpoint(ctx context.Context, id *ident) (*store.WorkloadEndpoint, error) {
	w, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, id.namespace, id.endpoint)
	if err == nil {
		return w, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	all, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(all, func(w *store.WorkloadEndpoint) bool { return w.Metadata.Name == id.endpoint }); i >= 0 {
		return all[i], nil
	}
	return nil, nil
}

// RemoveAttachment undoes the Add of a CNI attachment: its endpoint, its
// interface and the addresses of its handle. It is idempotent: an
// attachment never seen, or whose namespace is gone, is removed all the
// same (its addresses are released), and succeeds. A CNI attachment's
// interface is set down first and deleted just after it returns
// (unwireLater); a Docker endpoint's is deleted before.
func (s *Service) RemoveAttachment(ctx context.Context, a api.Attachment) error {
	id, err := s.attachment(a)
	if err != nil {
		return err
	}
	unlock := s.lock(id.endpoint)
	in, remove, err := s.removeAttachment(ctx, id)
	if err != nil || remove == nil {
		unlock()
		return err
	}
	s.unwireLater(in, remove, unlock)
	return nil
}

// removeAttachment is RemoveAttachment under the attachment's lock. For
// a CNI attachment it sets the interface down (nothing passes it from
// then on, so its addresses may go to another container at once),
// deletes the endpoint and releases the addresses, and returns the
// intent and the interface's deletion for unwireLater.
func (s *Service) removeAttachment(ctx context.Context, id *ident) (*intent, func() error, error) {
	if err := s.settle(ctx, id.namespace, id.endpoint); err != nil {
		return nil, nil, err
	}
	w, err := s.findEndpoint(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	in := &intent{Op: "remove", Namespace: id.namespace, Endpoint: id.endpoint, Workload: id.workload,
		HostIface: id.hostIface, Handle: id.handle, Started: time.Now().UTC()}
	if w != nil {
		in.Namespace, in.Workload = w.Metadata.Namespace, w.Spec.Workload
	}
	if err := s.record(in); err != nil {
		return nil, nil, err
	}
	// On failure the intent stays: the next remove or start finishes it.
	if id.orchestrator == OrchestratorLibnetwork || s.isStopping() {
		if err := s.finishRemove(ctx, in, w); err != nil {
			return nil, nil, err
		}
		s.forget(in.Namespace, in.Endpoint)
		return in, nil, nil
	}
	remove, err := veth.RemoveLater(in.HostIface)
	if err != nil {
		return nil, nil, err
	}
	if err := s.removeRecords(ctx, in, w); err != nil {
		remove()
		return nil, nil, err
	}
	return in, remove, nil
}

// unwireLater deletes a removed CNI attachment's interface (a veth pair,
// already down: remove is veth.RemoveLater's) in the background, then
// forgets the removal's intent and unlocks the attachment. The kernel
// takes 20-30 ms to delete a veth pair (about as long as the rest of a
// DEL), which the runtime need not wait for: the endpoint and the
// addresses are gone already, and the runtime deletes the container's
// namespace next, which takes the pair with it. A new change to the
// attachment waits for the lock; a node stopped first finishes the
// removal at its next start (the intent stays until then).
func (s *Service) unwireLater(in *intent, remove func() error, unlock func()) {
	s.unwiring.Add(1)
	go func() {
		defer s.unwiring.Done()
		defer unlock()
		if err := remove(); err != nil {
			s.Log.Warn("removing a removed attachment's interface; the next change to it or the next start tries again",
				"endpoint", in.Endpoint, "interface", in.HostIface, "err", err)
			return
		}
		s.forget(in.Namespace, in.Endpoint)
	}()
}

// Wait waits until the interfaces of removed attachments are gone; from
// then on removals delete their interface before they return (a request
// the API still serves while the node stops).
func (s *Service) Wait() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.unwiring.Wait()
}

func (s *Service) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// Check verifies what Add made for a CNI attachment: the endpoint (in
// the namespace given, with the addresses given), each address reserved
// for the attachment's handle, the interfaces, addresses and routes in
// the container's namespace and the host's routes to it. It says all
// that is wrong.
func (s *Service) Check(ctx context.Context, a api.Attachment) error {
	id, err := s.attachment(a)
	if err != nil {
		return err
	}
	defer s.lock(id.endpoint)()
	w, err := s.findEndpoint(ctx, id)
	if err != nil {
		return err
	}
	if w == nil {
		return api.Errorf(api.NotFound, "container %s has no endpoint for interface %s on network %s on this node", id.containerID, id.iface, id.network)
	}
	var errs []error
	addrs := toWorkload(w, "").Addresses
	if a.NetNS != "" && w.Metadata.Annotations[annotationNetNS] != a.NetNS {
		errs = append(errs, fmt.Errorf("endpoint %s is for network namespace %s, not %s", w.Metadata.Name, w.Metadata.Annotations[annotationNetNS], a.NetNS))
	}
	if len(a.Addresses) > 0 && !sameAddrs(a.Addresses, addrs) {
		errs = append(errs, fmt.Errorf("the endpoint has addresses %v, the runtime's result %v", addrs, a.Addresses))
	}
	for _, addr := range addrs {
		al, err := s.IPAM.Lookup(ctx, addr)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("IPAM: %w", err))
		case al.Handle != id.handle:
			errs = append(errs, fmt.Errorf("IPAM: %s is reserved for handle %s, not %s", addr, al.Handle, id.handle))
		}
	}
	if a.NetNS != "" {
		errs = append(errs, veth.Check(veth.Spec{NetNS: openNetNS(a.NetNS, a.NetNSHandle), HostIface: id.hostIface, Iface: id.iface, Addrs: addrs}))
	}
	if err := errors.Join(errs...); err != nil {
		return api.Errorf(api.Conflict, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}

// GC removes the CNI attachments of a network on this host that are not
// in the valid list, then releases the addresses of any other handle of
// the network's attachments whose container is not valid (an ADD cut
// short, calico-ipam delegated from another plugin). It goes on past
// failures and reports them all.
func (s *Service) GC(ctx context.Context, req api.GC) (*api.GCResult, error) {
	if _, err := s.attachment(api.Attachment{ContainerID: "x", Interface: "eth0", Network: req.Network}); err != nil {
		return nil, err
	}
	valid := map[string]bool{}
	var cids []string
	for _, v := range req.Valid {
		valid[v.ContainerID+"/"+v.Interface] = true
		cids = append(cids, v.ContainerID)
	}
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	out := &api.GCResult{Endpoints: []string{}, Handles: []string{}}
	var errs []error
	for _, w := range weps {
		if w.Spec.Node != s.Node || w.Spec.Orchestrator != OrchestratorCNI || w.Metadata.Annotations[annotationNetwork] != req.Network ||
			valid[w.Spec.ContainerID+"/"+w.Spec.Endpoint] {
			continue
		}
		err := s.RemoveAttachment(ctx, api.Attachment{ContainerID: w.Spec.ContainerID, Interface: w.Spec.Endpoint, Network: req.Network, Namespace: w.Metadata.Namespace})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Endpoints = append(out.Endpoints, w.Metadata.Namespace+"/"+w.Metadata.Name)
	}
	handles, err := s.GCAddresses(ctx, api.IPAMGC{Network: req.Network, Valid: cids})
	out.Handles = append(out.Handles, handles...)
	if err != nil {
		errs = append(errs, err)
	}
	if len(out.Endpoints)+len(out.Handles) > 0 {
		s.Log.Info("CNI garbage collected", "network", req.Network, "endpoints", len(out.Endpoints), "handles", len(out.Handles))
	}
	return out, errors.Join(errs...)
}

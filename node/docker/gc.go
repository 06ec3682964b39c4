package docker

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"calico/node/api"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
)

// The garbage collector removes what Docker removed while the node could
// not hear it (stopped, killed, its datastore away): endpoints, their
// interfaces, addresses and this host's networks on profiles. It trusts
// Docker's list, read before the datastore, and leaves whatever this run
// made since (live), so that it never races a container being started.
// It runs at start, whenever Docker activates the plugin (dockerd
// started), and every ten minutes.

// gcEvery is the time between passes; failed passes retry sooner.
const gcEvery = 10 * time.Minute

func (s *Server) collector(ctx context.Context) {
	timer := time.NewTimer(0) // a pass at once
	defer timer.Stop()
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-timer.C:
		}
		next := gcEvery + rand.N(gcEvery/10)
		err := s.collect(ctx)
		switch {
		case err == nil:
			backoff = time.Second
		case engineAway(err):
			s.Log.Debug("not collecting Docker's garbage: the Docker Engine does not answer", "err", err)
		case ctx.Err() == nil:
			s.Log.Info("collecting Docker's garbage (trying again)", "err", err, "in", backoff)
			next, backoff = backoff, min(2*backoff, time.Minute)
		}
		timer.Reset(next)
	}
}

// engineAway says the Docker Engine is not running: nothing to compare
// with, and no containers to lose either until it starts (and activates
// the plugin).
func engineAway(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// collect is one pass.
func (s *Server) collect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nets, err := s.Engine.Networks(ctx)
	if err != nil {
		return err
	}
	endpoints, addrs, ids := map[string]bool{}, map[netip.Addr]bool{}, map[string]bool{}
	for _, n := range nets {
		ids[n.ID] = true
		for _, e := range n.Containers {
			endpoints[e.EndpointID] = true
			for _, a := range []string{e.IPv4Address, e.IPv6Address} {
				if p, err := netip.ParsePrefix(a); err == nil {
					addrs[p.Addr().Unmap()] = true
				}
			}
		}
	}
	return errors.Join(s.collectEndpoints(ctx, endpoints), s.collectAddresses(ctx, addrs), s.collectProfiles(ctx, ids))
}

// collectEndpoints removes this node's Docker endpoints that Docker does
// not have.
func (s *Server) collectEndpoints(ctx context.Context, keep map[string]bool) error {
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, workload.OrchestratorLibnetwork)
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range weps {
		id := w.Spec.Endpoint
		if w.Spec.Node != s.Node || w.Spec.Orchestrator != workload.OrchestratorLibnetwork || keep[id] || s.isLive(id) {
			continue
		}
		if err := s.Workloads.RemoveAttachment(ctx, api.Attachment{Orchestrator: workload.OrchestratorLibnetwork, ContainerID: id}); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Log.Info("removed a Docker endpoint that Docker no longer has", "endpoint", short(id), "addresses", w.Spec.IPNetworks)
	}
	return errors.Join(errs...)
}

// collectAddresses releases the addresses calico-ipam gave this node's
// Docker that no endpoint of Docker's has.
func (s *Server) collectAddresses(ctx context.Context, keep map[netip.Addr]bool) error {
	blocks, err := s.IPAM.Blocks(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range blocks {
		for _, al := range b.Allocations {
			if !s.ours(al) || keep[al.Addr] || s.isLive(al.Handle) {
				continue
			}
			if _, err := s.IPAM.ReleaseByHandle(ctx, al.Handle); err != nil {
				errs = append(errs, err)
				continue
			}
			s.Log.Info("released an address that no endpoint of Docker's has", "address", al.Addr)
		}
	}
	return errors.Join(errs...)
}

// collectProfiles takes this host's networks that Docker no longer has
// off their profiles (deleting a profile with its last network, as
// deleteNetwork does).
func (s *Server) collectProfiles(ctx context.Context, keep map[string]bool) error {
	profiles, err := etcdv3.ListOf[*store.Profile](ctx, s.Store, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range profiles {
		for _, e := range networkEntries(p) {
			node, id, _ := strings.Cut(e, "/")
			if node != s.Node || keep[id] {
				continue
			}
			errs = append(errs, s.releaseProfile(ctx, p.Metadata.Name, id))
		}
	}
	return errors.Join(errs...)
}

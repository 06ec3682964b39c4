package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"calico/store"
	"calico/store/etcdv3"
)

// A Docker network is the profile of its name: the same name on every
// host is one group. The profile's annotations list the Docker networks
// (node/id) it stands for, so that the last one to go can delete it, and
// say whether calico made it for them (a profile a user made is never
// deleted).
const (
	annotationNetworks = "projectcalico.org/docker-networks"
	annotationMadeFor  = "projectcalico.org/made-for"
	madeForDocker      = "docker"
)

// attempts bounds the compare-and-swap retries of a profile change.
const attempts = 5

// ensureProfile makes sure the profile of n exists, applies n's labels
// (a label the profile applies with another value is a conflict: the
// networks of one name must agree) and lists this host's network.
func (s *Server) ensureProfile(ctx context.Context, n *network) error {
	entry := s.Node + "/" + n.ID
	for range attempts {
		p, err := etcdv3.GetOf[*store.Profile](ctx, s.Store, "", n.Name)
		if errors.Is(err, store.ErrNotFound) {
			p = store.ClassicProfile(n.Name)
			maps.Copy(p.Spec.LabelsToApply, n.Labels)
			p.Metadata.Annotations = map[string]string{annotationNetworks: entry, annotationMadeFor: madeForDocker}
			if err := s.Store.Create(ctx, p); !errors.Is(err, store.ErrExists) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		changed := false
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			have, ok := p.Spec.LabelsToApply[k]
			switch {
			case ok && have != n.Labels[k]:
				return fmt.Errorf("Docker network %s has label %s=%s, but its profile (the network on other hosts) applies %s=%s: give the networks of one name the same labels, or change the profile (calico apply)", n.Name, k, n.Labels[k], k, have)
			case !ok:
				if p.Spec.LabelsToApply == nil {
					p.Spec.LabelsToApply = map[string]string{}
				}
				p.Spec.LabelsToApply[k], changed = n.Labels[k], true
			}
		}
		entries := networkEntries(p)
		if !slices.Contains(entries, entry) {
			setNetworkEntries(p, append(entries, entry))
			changed = true
		}
		if !changed {
			return nil
		}
		if err := s.Store.Update(ctx, p); !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return fmt.Errorf("updating profile %s: it kept changing meanwhile", n.Name)
}

// releaseProfile takes a network of this host off its profile's list;
// with the last one gone, a profile calico made is deleted unless an
// endpoint uses it.
func (s *Server) releaseProfile(ctx context.Context, name, id string) error {
	entry := s.Node + "/" + id
	for range attempts {
		p, err := etcdv3.GetOf[*store.Profile](ctx, s.Store, "", name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		entries := networkEntries(p)
		if !slices.Contains(entries, entry) {
			return nil
		}
		entries = slices.DeleteFunc(entries, func(e string) bool { return e == entry })
		if len(entries) == 0 && p.Metadata.Annotations[annotationMadeFor] == madeForDocker {
			_, err := s.Store.Delete(ctx, store.IDOf(p), p.Metadata.ResourceVersion)
			switch {
			case err == nil:
				s.Log.Info("deleted the profile of the last Docker network of its name", "profile", name)
				return nil
			case errors.Is(err, store.ErrConflict):
				continue
			case !errors.Is(err, store.ErrInUse):
				return err
			}
			s.Log.Info("the last Docker network of a name is gone; its profile stays, as endpoints use it", "profile", name)
		}
		setNetworkEntries(p, entries)
		if err := s.Store.Update(ctx, p); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("updating profile %s: it kept changing meanwhile", name)
}

// networkEntries are the Docker networks (node/id) a profile stands for.
func networkEntries(p *store.Profile) []string {
	v := p.Metadata.Annotations[annotationNetworks]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func setNetworkEntries(p *store.Profile, entries []string) {
	slices.Sort(entries)
	if p.Metadata.Annotations == nil {
		p.Metadata.Annotations = map[string]string{}
	}
	if len(entries) == 0 {
		delete(p.Metadata.Annotations, annotationNetworks)
		return
	}
	p.Metadata.Annotations[annotationNetworks] = strings.Join(entries, ",")
}

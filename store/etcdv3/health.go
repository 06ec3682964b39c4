package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Health is the datastore's state as one client sees it.
type Health struct {
	Endpoints []string
	Healthy   bool
	// Leader is the name of the etcd leader.
	Leader   string
	Members  int
	Revision int64
	// Err says why the datastore is unhealthy, or which endpoints did not
	// answer while it is healthy.
	Err error
}

// Health asks the etcd endpoints for their status and members. The
// endpoints are asked at once, each with its own deadline, so one that is
// down does not make the others look down too.
func (s *Store) Health(ctx context.Context) Health {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	h := Health{Endpoints: s.kv.Endpoints()}
	members, err := s.kv.MemberList(ctx)
	if err != nil {
		h.Err = fmt.Errorf("listing etcd members: %w", err)
		return h
	}
	h.Members = len(members.Members)
	statuses := make([]*clientv3.StatusResponse, len(h.Endpoints))
	errs := make([]error, len(h.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range h.Endpoints {
		wg.Go(func() {
			ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if statuses[i], errs[i] = s.kv.Status(ectx, ep); errs[i] != nil {
				errs[i] = fmt.Errorf("etcd %s: %w", ep, errs[i])
			}
		})
	}
	wg.Wait()
	for _, st := range statuses {
		if st == nil {
			continue
		}
		h.Revision = max(h.Revision, st.Header.Revision)
		for _, m := range members.Members {
			if m.ID == st.Leader {
				h.Leader = m.Name
			}
		}
		if st.Leader != 0 {
			h.Healthy = true
		}
	}
	h.Err = errors.Join(errs...)
	return h
}

package store

import (
	"context"
	"fmt"
)

// Health is the datastore's state as one client sees it.
type Health struct {
	Endpoints []string
	Healthy   bool
	// Leader is the name of the etcd leader.
	Leader   string
	Members  int
	Revision int64
	Err      error
}

// Health asks the etcd endpoints for their status and members.
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
	for _, ep := range h.Endpoints {
		st, err := s.kv.Status(ctx, ep)
		if err != nil {
			h.Err = fmt.Errorf("etcd %s: %w", ep, err)
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
	if h.Healthy {
		h.Err = nil
	}
	return h
}

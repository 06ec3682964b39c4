package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"calico/node/api"
	"calico/node/localapi"
)

// diagnostics are what the node gives `calico diags`: its log's tail (when
// it writes to a file; under systemd it writes to the journal), its
// metrics and the etcd members.
func (n *node) diagnostics(cl clusterPart) localapi.Diagnostics {
	d := localapi.Diagnostics{Log: ownLog, Settings: n.cfg.Settings,
		Etcd: func(ctx context.Context) ([]api.EtcdMember, error) { return etcdMembers(ctx, cl) }}
	if m := n.obs.metrics; m != nil {
		d.Metrics = m.Handler()
	}
	return d
}

// maxLogRead bounds how much of the log's end is read.
const maxLogRead = 4 << 20

// ownLog is the last lines of the file the node's stderr goes to.
func ownLog(lines int) (string, error) {
	target, err := os.Readlink("/proc/self/fd/2")
	if err != nil {
		return "", api.Errorf(api.NotFound, "the node's log: %v", err)
	}
	f, err := os.Open("/proc/self/fd/2")
	if err != nil {
		return "", api.Errorf(api.NotFound, "the node's log: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return "", api.Errorf(api.NotFound, "the node logs to %s, not a file (under systemd: journalctl -u calico)", target)
	}
	off := max(st.Size()-maxLogRead, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return "", err
	}
	ls := strings.SplitAfter(string(b), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return fmt.Sprintf("# the last %d lines of %s\n", len(ls), target) + strings.Join(ls, ""), nil
}

// etcdMembers lists the etcd members with each one's status.
func etcdMembers(ctx context.Context, cl clusterPart) ([]api.EtcdMember, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := cl.Client()
	list, err := c.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.EtcdMember, 0, len(list.Members))
	for _, m := range list.Members {
		em := api.EtcdMember{Name: m.Name, ID: fmt.Sprintf("%x", m.ID), PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
		if len(m.ClientURLs) > 0 && !m.IsLearner {
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := c.Status(sctx, m.ClientURLs[0])
			scancel()
			if err != nil {
				em.Error = err.Error()
			} else {
				em.Leader, em.Revision, em.DBSize, em.Version = st.Leader == m.ID, st.Header.Revision, st.DbSize, st.Version
			}
		}
		out = append(out, em)
	}
	return out, nil
}

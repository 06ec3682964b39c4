package etcdv3

import (
	"context"
	"errors"
	"testing"

	"calico/internal/testutil"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestReadBack: a write that got no answer counts as applied only when
// every put is there with its value and every deleted key is gone.
func TestReadBack(t *testing.T) {
	cli := testutil.StartEtcd(t)
	ctx := t.Context()
	if _, err := cli.Put(ctx, "/a", "1"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Put(ctx, "/b", "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ops  []clientv3.Op
		want bool
	}{
		{"puts there", []clientv3.Op{clientv3.OpPut("/a", "1"), clientv3.OpPut("/b", "2")}, true},
		{"a put with another value", []clientv3.Op{clientv3.OpPut("/a", "1"), clientv3.OpPut("/b", "3")}, false},
		{"a put missing", []clientv3.Op{clientv3.OpPut("/c", "1")}, false},
		{"a delete done", []clientv3.Op{clientv3.OpDelete("/c"), clientv3.OpPut("/b", "2")}, true},
		{"a delete not done", []clientv3.Op{clientv3.OpDelete("/a")}, false},
	} {
		applied, rev, err := readBack(ctx, cli, tc.ops)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if applied != tc.want {
			t.Errorf("%s: applied %v; want %v", tc.name, applied, tc.want)
		}
		if applied && tc.ops[len(tc.ops)-1].IsPut() && rev != resp.Header.Revision {
			t.Errorf("%s: revision %d; want the newest put's %d", tc.name, rev, resp.Header.Revision)
		}
	}
	if _, _, err := readBack(ctx, cli, []clientv3.Op{clientv3.OpDelete("/", clientv3.WithPrefix())}); err == nil {
		t.Error("a range delete was checked; want an error")
	}
}

func TestUnanswered(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{rpctypes.ErrTimeoutDueToLeaderFail, true},
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrRequestTooLarge, false},
		{context.Canceled, false},
		{errors.New("something else"), false},
	} {
		if got := unanswered(tc.err); got != tc.want {
			t.Errorf("unanswered(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}

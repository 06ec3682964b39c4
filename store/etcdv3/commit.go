package etcdv3

import (
	"bytes"
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// attemptTimeout bounds one attempt of a write. A write that a follower
// forwards to a leader that has just died is lost without an answer, and
// etcd would hold it for its request timeout (7 s) although the others
// elect a new leader in about a second; an attempt that is cut short is
// settled by reading its keys back (see Commit).
const attemptTimeout = 2 * time.Second

// Commit runs one guarded write: cmps guard ops, which are puts and
// deletes of single keys. It reports whether the guards held and the
// revision the write made. An attempt that gets no answer may or may not
// have been applied: Commit reads the keys back, and when every put is
// there with its value and every deleted key is gone, the write counts as
// applied; otherwise it is tried again (its guards still decide) until
// ctx is done.
func Commit(ctx context.Context, kv *clientv3.Client, cmps []clientv3.Cmp, ops []clientv3.Op) (bool, int64, error) {
	unsure := false
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		resp, err := kv.Txn(actx).If(cmps...).Then(ops...).Commit()
		cancel()
		if err == nil && !resp.Succeeded && unsure {
			// An earlier attempt may have been applied after its read-back:
			// then it is what changed the guarded keys.
			if applied, rev, rerr := readBack(ctx, kv, ops); rerr == nil && applied {
				return true, rev, nil
			}
		}
		if err == nil {
			return resp.Succeeded, resp.Header.Revision, nil
		}
		unsure = true
		if ctx.Err() != nil || !unanswered(err) {
			return false, 0, err
		}
		pause(ctx)
		applied, rev, rerr := readBack(ctx, kv, ops)
		if rerr != nil {
			return false, 0, errors.Join(err, rerr)
		}
		if applied {
			return true, rev, nil
		}
	}
}

// IsUnavailable reports whether err says the datastore could not be
// reached or could not answer in time (no quorum, no leader, a timeout):
// the same request may succeed later.
func IsUnavailable(err error) bool { return unanswered(err) }

// unanswered reports whether a failed request may still have been applied
// or may succeed when tried again: it timed out, or the cluster was
// between leaders.
func unanswered(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	for _, e := range []error{rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrLeaderChanged, rpctypes.ErrNoLeader, rpctypes.ErrStopped, rpctypes.ErrTimeoutWaitAppliedIndex} {
		if errors.Is(err, e) {
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// readBack reads the keys of ops at one revision and reports whether the
// write they make is what the datastore holds, with the revision of the
// newest of them. It tries until the datastore answers or ctx is done.
func readBack(ctx context.Context, kv *clientv3.Client, ops []clientv3.Op) (bool, int64, error) {
	gets := make([]clientv3.Op, 0, len(ops))
	for _, op := range ops {
		if (!op.IsPut() && !op.IsDelete()) || len(op.RangeBytes()) > 0 {
			return false, 0, errors.New("a write of a key range cannot be checked")
		}
		gets = append(gets, clientv3.OpGet(string(op.KeyBytes())))
	}
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		resp, err := kv.Txn(actx).Then(gets...).Commit()
		cancel()
		if err != nil {
			if ctx.Err() != nil || !unanswered(err) {
				return false, 0, err
			}
			pause(ctx)
			continue
		}
		rev := int64(0)
		for i, op := range ops {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			switch {
			case op.IsDelete() && len(kvs) == 0:
			case op.IsPut() && len(kvs) == 1 && bytes.Equal(kvs[0].Value, op.ValueBytes()):
				rev = max(rev, kvs[0].ModRevision)
			default:
				return false, 0, nil
			}
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		return true, rev, nil
	}
}

// pause waits a little before the next attempt, so that an error that
// comes at once (no member reachable) is not a busy loop.
func pause(ctx context.Context) {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

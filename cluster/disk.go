package cluster

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// etcd writes its log ahead in segments it allocates 64 MiB at a time, and
// a failed write of it is fatal to the process. So a member starts only
// when the data dir has room for more than one segment, and is stopped
// (the node keeps enforcing its last state and stays a member) before the
// room runs out; it starts again once there is room.
var (
	// startFree is the free space a member needs to start (and to start
	// again).
	startFree = diskBytes("CALICO_ETCD_START_FREE", 192<<20)
	// stopFree is the free space below which a running member stops.
	stopFree = diskBytes("CALICO_ETCD_STOP_FREE", 96<<20)
)

// diskBytes reads a threshold from the environment (tests set small
// ones), or takes the default.
func diskBytes(env string, def uint64) uint64 {
	if v, err := strconv.ParseUint(os.Getenv(env), 10, 64); err == nil {
		return v
	}
	return def
}

// freeBytes is the space free for root in dir's file system.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bfree * uint64(st.Bsize), nil
}

// DiskFullError says the data dir has no room for etcd.
type DiskFullError struct {
	Dir        string
	Free, Need uint64
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("data dir full: %d MiB free in %s, etcd needs %d MiB", e.Free>>20, e.Dir, e.Need>>20)
}

// checkRoom refuses to start a member without room for its log.
func (c *Cluster) checkRoom() error {
	free, err := freeBytes(c.cfg.DataDir)
	if err != nil || free >= startFree {
		return nil // a file system that cannot tell does not stop us
	}
	return &DiskFullError{Dir: c.cfg.DataDir, Free: free, Need: startFree}
}

// DiskFull says why this host's etcd member is stopped for lack of room,
// or "".
func (c *Cluster) DiskFull() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full == nil {
		return ""
	}
	return c.full.Error()
}

// watchDisk stops this host's member when the data dir runs out of room,
// and starts it again when there is room, until the cluster closes.
func (c *Cluster) watchDisk() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		free, err := freeBytes(c.cfg.DataDir)
		if err != nil {
			continue
		}
		c.mu.Lock()
		e, full := c.etcd, c.full
		c.mu.Unlock()
		switch {
		case e != nil && free < stopFree:
			c.stopForRoom(e, free)
		case full != nil && free >= startFree:
			c.restartWithRoom(free)
		}
	}
}

// stopForRoom stops the running member before etcd fails for lack of
// room; the host stays a voter and the others keep the datastore.
func (c *Cluster) stopForRoom(e interface{ Close() }, free uint64) {
	full := &DiskFullError{Dir: c.cfg.DataDir, Free: free, Need: startFree}
	c.log.Error(full.Error() + ": stopping this host's etcd member; the node keeps enforcing its last state and starts it again when there is room")
	c.mu.Lock()
	c.etcd, c.full = nil, full // watchMember: this stop is ours
	c.mu.Unlock()
	e.Close()
}

// restartWithRoom starts the member stopped for lack of room again.
func (c *Cluster) restartWithRoom(free uint64) {
	c.log.Info("the data dir has room again; starting this host's etcd member", "free_mib", free>>20)
	if err := c.startMember(c.ctx, false); err != nil {
		c.log.Error("starting the etcd member again", "err", err)
		return
	}
	c.mu.Lock()
	c.full = nil
	c.mu.Unlock()
}

// startOrWait starts a resuming voter's member, unless the data dir has
// no room: then the node runs without it (a client of the others) until
// watchDisk finds room.
func (c *Cluster) startOrWait(ctx context.Context) (started bool, err error) {
	if err := c.checkRoom(); err != nil {
		full := err.(*DiskFullError)
		c.log.Error(full.Error() + ": not starting this host's etcd member until there is room; the node enforces its last state")
		c.mu.Lock()
		c.full = full
		c.mu.Unlock()
		return false, nil
	}
	return true, c.startMember(ctx, false)
}

package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// NetNS is a named network namespace (under /var/run/netns) that lives for
// one test.
type NetNS struct {
	Name   string
	handle netns.NsHandle
}

// NewNetNS creates a fresh named network namespace and deletes it when the
// test ends. It uses `ip netns`, which first makes /run/netns a shared
// mount of its own: a namespace mounted on the bare directory before that
// happens (by anyone) could no longer be removed.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "calico-test-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("creating network namespace %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		exec.Command("ip", "netns", "delete", name).Run()
		t.Fatalf("opening network namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("deleting network namespace %s: %v: %s", name, err, out)
		}
	})
	return &NetNS{Name: name, handle: h}
}

// Handle is the namespace's file descriptor, for netlink.NewHandleAt and
// nftables.WithNetNSFd. It stays open until the test ends.
func (n *NetNS) Handle() netns.NsHandle { return n.handle }

// Path is the namespace's bind mount.
func (n *NetNS) Path() string { return "/var/run/netns/" + n.Name }

// Do runs f on a fresh OS thread switched into the namespace. The thread is
// switched back afterwards; if that fails it is left locked, so the runtime
// discards it rather than reuse a thread in the wrong namespace.
func (n *NetNS) Do(f func() error) error {
	return onLockedThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			return fmt.Errorf("entering %s: %w", n.Name, err)
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			return fmt.Errorf("leaving %s: %w", n.Name, err)
		}
		return ferr
	})
}

// onLockedThread runs f on a new goroutine locked to its OS thread. The
// thread is released only when f succeeds; a failed f may have left it in
// another namespace, and a goroutine that exits locked takes its thread
// with it.
func onLockedThread(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := f()
		if err == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// OpenNetNS opens an existing named namespace for the length of the test,
// without taking ownership: the namespace is not deleted at the end.
func OpenNetNS(t testing.TB, name string) *NetNS {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening network namespace %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return &NetNS{Name: name, handle: h}
}

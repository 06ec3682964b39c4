//go:build linux

package testutil

import (
	"testing"

	"github.com/vishvananda/netlink"
)

func TestPrivilegedNetNS(t *testing.T) {
	Privileged(t)
	ns := NewNetNS(t)
	err := ns.Do(func() error {
		_, err := netlink.LinkByName("lo")
		return err
	})
	if err != nil {
		t.Fatalf("looking up lo inside %s: %v", ns.Name, err)
	}
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", ns.Name, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil || len(links) != 1 {
		t.Fatalf("links in a fresh namespace = %v, %v; want only lo", links, err)
	}
}

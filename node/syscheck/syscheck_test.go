package syscheck

import (
	"net"
	"os"
	"strings"
	"testing"
)

// TestPortTaken: a port another process holds is a FAIL that says so.
func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := l.Addr().(*net.TCPAddr).Port
	r := port(Port{Number: n, Proto: "tcp", What: "metrics"})
	if r.Status != Fail || !strings.Contains(r.Detail, "in use by another process") {
		t.Errorf("taken: %+v", r)
	}
	l.Close()
	if r := port(Port{Number: n, Proto: "tcp", What: "metrics"}); r.Status != OK {
		t.Errorf("free: %+v", r)
	}
}

func TestNodePorts(t *testing.T) {
	ps := NodePorts(":9091", "127.0.0.1:9099")
	if len(ps) != 9 || ps[7].Number != 9091 || ps[8].Number != 9099 {
		t.Errorf("%+v", ps)
	}
	if ps := NodePorts("", ""); len(ps) != 7 {
		t.Errorf("without metrics and health: %+v", ps)
	}
}

func TestDisk(t *testing.T) {
	if r := disk(t.TempDir() + "/not/yet"); r.Status == Fail && !strings.Contains(r.Detail, "MiB free") {
		t.Errorf("%+v", r)
	}
}

// TestPrivilegedRun runs every check on this machine: none may fail but
// the ones this machine lacks, and each line has a verdict and a detail.
func TestPrivilegedRun(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("PRIVILEGED_TESTS") == "1" {
			t.Fatal("PRIVILEGED_TESTS=1 but not root")
		}
		t.Skip("needs root (a throwaway network namespace)")
	}
	rs := Run(t.Context(), Config{DataDir: t.TempDir()})
	for _, r := range rs {
		if r.Status == "" || r.Check == "" || r.Detail == "" {
			t.Errorf("incomplete line %+v", r)
		}
		if r.Check == "nftables" && r.Status != OK {
			t.Errorf("nftables: %+v", r)
		}
	}
}

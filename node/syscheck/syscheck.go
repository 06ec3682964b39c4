// Package syscheck checks that a host can run a node, as `calicoctl node
// checksystem` does for Calico: the kernel and the nftables features the
// firewall uses (tried in a throwaway network namespace), netlink, IPv6,
// the sysctls, the ports, the data dir's free space, clock sync and
// firewalls that hook where ours does. `calico checksystem` prints it;
// `calico up` logs what is not OK.
package syscheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Status is a check's verdict.
type Status string

const (
	OK   Status = "OK"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Result is one check's outcome: what was checked, and what to do when
// it is not OK.
type Result struct {
	Status Status `json:"status"`
	Check  string `json:"check"`
	Detail string `json:"detail"`
	// Optional: a feature calico does not use yet (not worth a warning
	// in the node's log).
	Optional bool `json:"optional,omitempty"`
}

// Config is what to check.
type Config struct {
	// DataDir is the node's data dir (its free space).
	DataDir string
	// Ports are the ports that must be free (none when a node runs: it
	// holds them).
	Ports []Port
	// NodeRunning: the node is up on this host, so its own ports and
	// table are expected.
	NodeRunning bool
}

// Port is one port the node listens on.
type Port struct {
	Number int
	Proto  string // tcp or udp
	What   string
}

// NodePorts are the ports a node listens on, with the metrics and
// health addresses when they are set.
func NodePorts(metricsAddr, healthAddr string) []Port {
	ps := []Port{{179, "tcp", "BGP"}, {2379, "tcp", "etcd clients"}, {2380, "tcp", "etcd peers"},
		{7946, "tcp", "gossip"}, {7946, "udp", "gossip"}, {7947, "tcp", "the join API"}, {7948, "udp", "the liveness check"}}
	for _, a := range []struct{ addr, what string }{{metricsAddr, "metrics"}, {healthAddr, "health checks"}} {
		if _, p, err := net.SplitHostPort(a.addr); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				ps = append(ps, Port{n, "tcp", a.what})
			}
		}
	}
	return ps
}

// Run runs every check.
func Run(ctx context.Context, cfg Config) []Result {
	var out []Result
	out = append(out, kernel())
	out = append(out, nftFeatures()...)
	out = append(out, netlinkCheck(), ipv6())
	out = append(out, sysctls()...)
	for _, p := range cfg.Ports {
		out = append(out, port(p))
	}
	out = append(out, disk(cfg.DataDir), clock())
	out = append(out, conflicts()...)
	return out
}

// Failed reports whether any check failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// Print writes one line per check: STATUS, what, and the detail.
func Print(w io.Writer, rs []Result) {
	for _, r := range rs {
		fmt.Fprintf(w, "%-5s %-36s %s\n", r.Status, r.Check, r.Detail)
	}
}

func kernel() Result {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return res(Fail, "kernel", "uname: "+err.Error())
	}
	rel := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	fmt.Sscanf(rel, "%d.%d", &major, &minor)
	if major < 5 || major == 5 && minor < 10 {
		return res(Warn, "kernel", rel+": calico is tested on 5.10 and newer (nftables inet tables, concatenations and fib need a recent kernel); upgrade the kernel if a check below fails")
	}
	return res(OK, "kernel", rel)
}

func netlinkCheck() Result {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return res(Fail, "netlink", "opening a route netlink socket: "+err.Error()+": calico programs routes and links through it")
	}
	unix.Close(fd)
	return res(OK, "netlink", "route netlink socket")
}

func ipv6() Result {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
	switch {
	case err != nil:
		return res(Warn, "IPv6", "not available ("+err.Error()+"): workloads get IPv4 addresses only; boot without ipv6.disable=1 for dual stack")
	case strings.TrimSpace(string(b)) == "1":
		return res(Warn, "IPv6", "disabled (net.ipv6.conf.all.disable_ipv6 = 1): workloads get IPv4 addresses only; set it to 0 for dual stack")
	}
	return res(OK, "IPv6", "enabled")
}

// sysctls are the ones the node depends on; it sets the forwarding ones
// itself at start.
func sysctls() []Result {
	var out []Result
	for _, s := range []struct{ path, want, why string }{
		{"net/ipv4/ip_forward", "1", "calico up sets it to 1 (workloads are routed)"},
		{"net/ipv6/conf/all/forwarding", "1", "calico up sets it to 1 (workloads are routed)"},
		{"net/ipv4/conf/all/rp_filter", "", "strict (1) reverse-path filtering on the host's uplinks can drop asymmetric routes; calico checks workloads' sources itself"},
		{"net/netfilter/nf_conntrack_max", "", "established flows pass first; a full conntrack table drops new flows"},
	} {
		name := "sysctl " + strings.ReplaceAll(s.path, "/", ".")
		b, err := os.ReadFile("/proc/sys/" + s.path)
		v := strings.TrimSpace(string(b))
		switch {
		case err != nil && s.path == "net/netfilter/nf_conntrack_max":
			out = append(out, res(Warn, name, "not readable (nf_conntrack not loaded yet): the kernel loads it with the firewall"))
		case err != nil:
			out = append(out, res(Warn, name, "not readable: "+err.Error()))
		case s.want != "" && v != s.want:
			out = append(out, res(Warn, name, v+": "+s.why))
		case s.path == "net/ipv4/conf/all/rp_filter" && v == "1":
			out = append(out, res(Warn, name, v+": "+s.why))
		case s.path == "net/netfilter/nf_conntrack_max":
			n, _ := strconv.Atoi(v)
			st := OK
			if n < 65536 {
				st = Warn
			}
			out = append(out, res(st, name, v+" ("+s.why+"; 65536 or more is advised)"))
		default:
			out = append(out, res(OK, name, v))
		}
	}
	return out
}

func port(p Port) Result {
	name := fmt.Sprintf("port %d/%s", p.Number, p.Proto)
	addr := net.JoinHostPort("", strconv.Itoa(p.Number))
	var err error
	if p.Proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			l.Close()
		}
	}
	switch {
	case err == nil:
		return res(OK, name, "free ("+p.What+")")
	case errors.Is(err, unix.EADDRINUSE):
		return res(Fail, name, "in use by another process: "+p.What+" needs it; stop that process (ss -lntup shows it) or give calico another port")
	}
	return res(Fail, name, "cannot listen ("+err.Error()+"): "+p.What+" needs it")
}

// disk checks the free space where the data dir is (or would be).
func disk(dir string) Result {
	d := dir
	for {
		if _, err := os.Stat(d); err == nil || d == "/" || d == "." {
			break
		}
		d = parent(d)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d, &st); err != nil {
		return res(Warn, "free disk", "statfs "+d+": "+err.Error())
	}
	free := st.Bavail * uint64(st.Bsize)
	msg := fmt.Sprintf("%d MiB free in %s", free>>20, d)
	switch {
	case free < 192<<20:
		return res(Fail, "free disk", msg+": etcd needs 192 MiB to start; free some space")
	case free < 1<<30:
		return res(Warn, "free disk", msg+": etcd stops below 96 MiB; keep 1 GiB or more free")
	}
	return res(OK, "free disk", msg)
}

func parent(d string) string {
	i := strings.LastIndex(strings.TrimSuffix(d, "/"), "/")
	if i <= 0 {
		return "/"
	}
	return d[:i]
}

// clock asks the kernel whether an NTP client keeps the clock in sync:
// etcd's leases and the cluster's certificates need clocks that agree.
func clock() Result {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	switch {
	case err != nil:
		return res(Warn, "clock sync", "adjtimex: "+err.Error())
	case state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0:
		return res(Warn, "clock sync", "the kernel says the clock is not synchronised: run an NTP client (chrony, systemd-timesyncd); hosts whose clocks disagree can refuse each other's certificates")
	}
	return res(OK, "clock sync", fmt.Sprintf("synchronised (estimated error %d µs)", tx.Esterror))
}

func res(st Status, check, detail string) Result {
	return Result{Status: st, Check: check, Detail: detail}
}

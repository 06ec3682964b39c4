package workload

import (
	"errors"
	"slices"

	"golang.org/x/sys/unix"

	"calico/node/calc"
	"calico/store"
)

// A workload of this host is up while its interface is there, up and has
// a carrier. An attached interface comes and goes with its VM: while it
// is absent the workload is down (the node routes to it again when the
// kernel reports it), which `workload list` and `calico status` say.

// links asks the kernel for interfaces' flags one name at a time
// (SIOCGIFFLAGS: microseconds, nothing allocated), not by listing every
// link: with a thousand workload interfaces a listing (net.Interfaces)
// allocated 11 MB and took 20-100 ms here (the kernel describes every
// link, statistics and all), which every `calico status` and every
// workload's add paid, each then setting off a collection of the node's
// heap. The socket is of the calling thread's network namespace: the
// one asked about.
type links struct {
	fd  int
	err error
}

func openLinks() *links {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	return &links{fd: fd, err: err}
}

func (l *links) close() {
	if l.err == nil {
		unix.Close(l.fd)
	}
}

// flags are the interface's up and running (carrier) flags; ok is
// false when there is no interface of that name.
func (l *links) flags(name string) (up, running, ok bool, err error) {
	if l.err != nil {
		return false, false, false, l.err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return false, false, false, nil // too long a name for any interface
	}
	switch err := unix.IoctlIfreq(l.fd, unix.SIOCGIFFLAGS, ifr); {
	case errors.Is(err, unix.ENODEV):
		return false, false, false, nil
	case err != nil:
		return false, false, false, err
	}
	f := ifr.Uint16()
	return f&unix.IFF_UP != 0, f&unix.IFF_RUNNING != 0, true, nil
}

// stateOf is the state of a local workload: "up", or "down" and why.
func stateOf(w *store.WorkloadEndpoint, l *links) (state, why string) {
	name := w.Spec.InterfaceName
	up, running, ok, err := l.flags(name)
	switch {
	case err != nil:
		return "down", "interface " + name + " could not be read: " + err.Error()
	case !ok && attachedKind(w) != "":
		return "down", "interface " + name + " is absent (is the VM running?)"
	case !ok:
		return "down", "interface " + name + " is absent"
	case !up:
		return "down", "interface " + name + " is down"
	case !running:
		return "down", "interface " + name + " has no carrier (nothing on its other side)"
	}
	return "up", ""
}

// Down lists the workloads of node whose interface is absent, down or
// without carrier, as "namespace/name: why", for `calico status`. It
// reads the kernel: call it on node's host.
func Down(node string, ws []*store.WorkloadEndpoint) []string {
	ls := openLinks()
	defer ls.close()
	var out []string
	for _, w := range ws {
		if w.Spec.Node != node || w.Spec.InterfaceName == "" || store.Broken(w) || !calc.Policed(w) {
			continue
		}
		if state, why := stateOf(w, ls); state != "up" {
			out = append(out, w.Metadata.Namespace+"/"+w.Spec.Workload+": "+why)
		}
	}
	slices.Sort(out)
	return out
}

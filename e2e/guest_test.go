package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/internal/testutil"
)

// A guest is the VM side of a tap on a lab host, for the VM tests: a
// real VM (QEMU, software emulation, booting a Debian kernel with an
// initramfs of busybox-static, the virtio-net modules, ISC dhclient and
// the probe), or the stand-in (probe tapbridge: it opens the tap as QEMU
// does and copies its frames to a veth in a network namespace of its
// own, where the same clients run). CALICO_VM_GUEST=qemu or stand-in
// picks one; by default QEMU when it and a Debian kernel are here, and
// each test says which ran.
type guest interface {
	// Kind is "QEMU" or "the stand-in".
	Kind() string
	// Run runs a shell command in the guest: its output and whether it
	// exited 0.
	Run(cmd string, timeout time.Duration) (string, error)
	// Path is where a helper is in the guest: lease.sh (the DHCP
	// clients' script), probe, leases (the directory the script writes
	// the leases to: v4 and v6).
	Path(name string) string
	// Stop ends the guest; the tap stays (it is persistent).
	Stop()
}

// clientScript configures what udhcpc (bound, renew) or dhclient -6
// (BOUND6, …) got, as a guest's boot scripts would: a /32, the MTU and
// the routes of option 121, a /128; and writes the lease to LEASES/v4
// (with event=bound or renew) or LEASES/v6.
const clientScript = `#!/bin/sh
PATH=/bin:/sbin:/usr/bin:/usr/sbin
event=$1
case "$1$reason" in
bound|renew)
	ip addr add "$ip/${mask:-32}" dev "$interface" 2>/dev/null
	[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
	set -- $staticroutes
	while [ $# -ge 2 ]; do
		if [ "$2" = 0.0.0.0 ]; then ip route replace "$1" dev "$interface" scope link
		else ip route replace "$1" via "$2" dev "$interface"; fi
		shift 2
	done
	{ env; echo "event=$event"; } > LEASES/v4 ;;
BOUND6|RENEW6|REBIND6|REBOOT6)
	ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad 2>/dev/null ||
		ip -6 addr add "$new_ip6_address/128" dev "$interface" # busybox's ip
	env > LEASES/v6 ;;
esac
exit 0
`

// startGuest starts a guest on tap (which exists, on host) with mac.
func startGuest(t *testing.T, lab *Lab, host, tap, mac string) guest {
	t.Helper()
	kind := os.Getenv("CALICO_VM_GUEST")
	kernel, why := findKernel()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil && why == "" {
		why = "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
	}
	var g guest
	switch {
	case kind == "qemu" && why != "":
		t.Fatalf("CALICO_VM_GUEST=qemu, but %s", why)
	case kind == "stand-in" || kind == "" && why != "":
		if why != "" {
			t.Logf("guest: the stand-in (probe tapbridge), as %s", why)
		}
		g = startStandIn(t, host, tap, mac)
	default:
		g = startQEMU(t, lab, host, tap, mac, kernel, "")
	}
	t.Logf("guest on %s of %s: %s", tap, host, g.Kind())
	return g
}

// kernelDirs are where a Debian kernel is looked for: an extracted
// linux-image package (boot/vmlinuz-*, lib/modules/*), or the root.
func kernelDirs() []string {
	if d := os.Getenv("CALICO_VM_KERNEL_DIR"); d != "" {
		return []string{d}
	}
	return []string{"/var/cache/calico-vm", "/"}
}

// vmKernel is a kernel and its modules' directory.
type vmKernel struct{ vmlinuz, modules string }

// findKernel finds a Debian kernel with the virtio-net module, or says
// why there is none.
func findKernel() (vmKernel, string) {
	for _, d := range kernelDirs() {
		ks, _ := filepath.Glob(filepath.Join(d, "boot", "vmlinuz-*"))
		for _, k := range ks {
			mods := filepath.Join(d, "lib", "modules", strings.TrimPrefix(filepath.Base(k), "vmlinuz-"))
			if _, err := os.Stat(filepath.Join(mods, "kernel", "drivers", "net", "virtio_net.ko")); err == nil {
				return vmKernel{vmlinuz: k, modules: mods}, ""
			}
		}
	}
	return vmKernel{}, "no Debian kernel with virtio_net.ko in " + strings.Join(kernelDirs(), " or ") +
		" (apt-get download linux-image-amd64's kernel package and dpkg-deb -x it into /var/cache/calico-vm, as .ci/run does)"
}

// qemuGuest is a VM: QEMU in the host's namespace on the tap; its first
// serial port is the console (a log), the second carries commands.
type qemuGuest struct {
	cmd     *exec.Cmd
	conn    net.Conn
	out     *bufio.Reader
	mu      sync.Mutex
	seq     int
	console string
	exited  chan struct{}
}

func (q *qemuGuest) Kind() string {
	return "QEMU (software emulation, Debian's kernel, busybox-static)"
}

func (q *qemuGuest) Path(name string) string {
	switch name {
	case "leases":
		return "/tmp"
	case "probe":
		return "/bin/probe"
	}
	return "/" + name
}

// guestModules load virtio-net, in order.
var guestModules = []string{
	"drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_modern_dev",
	"drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci", "net/core/failover",
	"drivers/net/net_failover", "drivers/net/virtio_net",
}

// guestInit boots the VM and then runs the commands that come on its
// second serial port (raw, no echo): each line is "ID COMMAND"; the
// output follows, then "@@END ID STATUS".
const guestInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin /var/lib/dhcp /run /etc
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in MODULES; do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
ip link set lo up
ip link set eth0 up
# calico.send=ADDR:PORT (the benchmark): get a lease at once, then send
# datagrams to ADDR:PORT.
for a in $(cat /proc/cmdline); do
	case $a in calico.send=*) send=${a#calico.send=} ;; esac
done
if [ -n "$send" ]; then
	(busybox udhcpc -i eth0 -f -q -t 100 -T 1 -s /lease.sh >/dev/null 2>&1 && exec /bin/probe udpsend "$send") &
fi
stty -F /dev/ttyS1 raw -echo 2>/dev/null
while read -r id cmd; do
	[ -n "$id" ] || continue
	sh -c "$cmd" > /tmp/out 2>&1
	rc=$?
	cat /tmp/out
	echo "@@END $id $rc"
done < /dev/ttyS1 > /dev/ttyS1 2>&1
poweroff -f
`

// startQEMU boots the VM on tap; append is more of the kernel's command
// line (calico.send=ADDR:PORT for the benchmark). no_timer_check: in
// software emulation on a busy machine the kernel's check of the timer
// interrupt fails now and then ("IO-APIC + timer doesn't work"), and it
// panics.
func startQEMU(t *testing.T, lab *Lab, host, tap, mac string, k vmKernel, append string) guest {
	t.Helper()
	dir := t.TempDir()
	initrd, err := guestInitrd(k)
	if err != nil {
		t.Fatalf("building the guest's initramfs: %v", err)
	}
	sock := filepath.Join(dir, "cmd.sock")
	q := &qemuGuest{console: filepath.Join(lab.dir, "guest-"+tap+".log")}
	q.cmd = exec.Command("nsenter", "--net=/run/netns/"+hostNS(host), "qemu-system-x86_64",
		"-accel", "tcg", "-m", "256", "-nographic", "-nodefaults", "-no-reboot",
		"-kernel", k.vmlinuz, "-initrd", initrd, "-append", strings.TrimSpace("console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check "+append),
		"-serial", "file:"+q.console,
		"-chardev", "socket,id=cmd,path="+sock+",server=on,wait=off", "-serial", "chardev:cmd",
		"-netdev", "tap,id=n0,ifname="+tap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,romfile=,mac="+mac)
	var stderr bytes.Buffer
	q.cmd.Stderr = &stderr
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	q.exited = make(chan struct{})
	go func() { q.cmd.Wait(); close(q.exited) }()
	t.Cleanup(q.Stop)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if q.conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU's command socket: %v\n%s", err, stderr.String())
		}
	}
	q.out = bufio.NewReader(q.conn)
	// The kernel boots in software emulation: allow a slow machine time.
	// The guest answers once its command loop reads the serial port.
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if _, err := q.Run("true", 2*time.Second); err == nil {
			return q
		}
		select {
		case <-q.exited:
			deadline = time.Time{} // it will not boot
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(q.console)
			q.Stop()
			t.Fatalf("the guest did not boot (within 3 minutes)\nconsole:\n%s\nQEMU: %s", tail(string(b), 30), stderr.String())
		}
	}
}

func (q *qemuGuest) Run(cmd string, timeout time.Duration) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	id := fmt.Sprint(q.seq)
	if _, err := fmt.Fprintf(q.conn, "%s %s\n", id, cmd); err != nil {
		return "", err
	}
	q.conn.SetReadDeadline(time.Now().Add(timeout))
	var out strings.Builder
	for {
		line, err := q.out.ReadString('\n')
		if err != nil {
			return out.String(), fmt.Errorf("no answer from the guest to %q: %w", cmd, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "@@END ") && !strings.HasPrefix(line, "@@END "+id+" ") {
			out.Reset() // the end of an earlier command that timed out
			continue
		}
		if rest, ok := strings.CutPrefix(line, "@@END "+id+" "); ok {
			if rest != "0" {
				return out.String(), fmt.Errorf("%q exited %s", cmd, rest)
			}
			return out.String(), nil
		}
		out.WriteString(line + "\n")
	}
}

func (q *qemuGuest) Stop() {
	if q.conn != nil {
		q.conn.Close()
	}
	if q.cmd.Process != nil {
		q.cmd.Process.Kill()
		<-q.exited
	}
}

var (
	initrdMu sync.Mutex
	initrds  = map[string]string{}
)

// guestInitrd is the guest's initramfs for kernel k, built once (beside
// the probe, in the directory the tests remove at the end).
func guestInitrd(k vmKernel) (string, error) {
	initrdMu.Lock()
	defer initrdMu.Unlock()
	if p, ok := initrds[k.vmlinuz]; ok {
		return p, nil
	}
	p := filepath.Join(filepath.Dir(probeBin), fmt.Sprintf("initrd-%d.gz", len(initrds)))
	if err := buildInitrd(p, k); err != nil {
		return "", err
	}
	initrds[k.vmlinuz] = p
	return p, nil
}

// buildInitrd writes the guest's initramfs: busybox, the virtio-net
// modules, the probe (built static), ISC dhclient with its libc when the
// host has it, the DHCP clients' script and init.
func buildInitrd(path string, k vmKernel) error {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("no busybox (apt-get install busybox-static): %w", err)
	}
	files := map[string]string{"bin/busybox": busybox, "bin/probe": staticProbe()}
	var mods []string
	for _, m := range guestModules {
		files["lib/modules/"+filepath.Base(m)+".ko"] = filepath.Join(k.modules, "kernel", m+".ko")
		mods = append(mods, filepath.Base(m))
	}
	if dh, err := exec.LookPath("dhclient"); err == nil {
		files["sbin/dhclient"] = dh
		files["lib/x86_64-linux-gnu/libc.so.6"] = "/lib/x86_64-linux-gnu/libc.so.6"
		files["lib64/ld-linux-x86-64.so.2"] = "/lib64/ld-linux-x86-64.so.2"
	}
	text := map[string]string{
		"init":     strings.ReplaceAll(guestInit, "MODULES", strings.Join(mods, " ")),
		"lease.sh": strings.ReplaceAll(clientScript, "LEASES", "/tmp"),
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	cw := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "sbin", "lib", "lib/modules", "lib/x86_64-linux-gnu", "lib64", "tmp"} {
		cw.add(d, 0o40755, nil)
	}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		cw.add(name, 0o100755, b)
	}
	for name, body := range text {
		cw.add(name, 0o100755, []byte(body))
	}
	cw.add("TRAILER!!!", 0, nil)
	if cw.err != nil {
		return cw.err
	}
	return zw.Close()
}

// cpioWriter writes a "newc" cpio archive, the format of an initramfs.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func (c *cpioWriter) add(name string, mode int, body []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	buf = append(buf, body...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	_, c.err = c.w.Write(buf)
}

var (
	staticProbeOnce sync.Once
	staticProbePath string
)

// staticProbe is the probe built without cgo, to run in the guest.
func staticProbe() string {
	staticProbeOnce.Do(func() {
		staticProbePath = probeBin + "-static"
		cmd := exec.Command("go", "build", "-o", staticProbePath, "./probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			panic(fmt.Sprintf("building the static probe: %v\n%s", err, out))
		}
	})
	return staticProbePath
}

// standIn is the stand-in for a VM: a namespace whose eth0 (with the
// guest's MAC) is a veth whose other end, wire, probe tapbridge
// connects to the tap.
type standIn struct {
	ns, dir string
	bridge  *exec.Cmd
	dhcp    *testutil.SyncBuffer // the bridge's DHCP lines
}

func (s *standIn) Kind() string {
	return "the stand-in (probe tapbridge copying the tap's frames to a veth of a namespace with busybox udhcpc and ISC dhclient)"
}

func (s *standIn) Path(name string) string {
	switch name {
	case "leases":
		return s.dir
	case "probe":
		return probeBin
	}
	return filepath.Join(s.dir, name)
}

var standIns int

func startStandIn(t *testing.T, host, tap, mac string) guest {
	t.Helper()
	standIns++
	s := &standIn{ns: fmt.Sprintf("%s-guest%d", labName(), standIns), dir: t.TempDir(), dhcp: &testutil.SyncBuffer{}}
	exec.Command("ip", "netns", "delete", s.ns).Run()
	for _, args := range [][]string{
		{"netns", "add", s.ns},
		{"-n", s.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "wire"},
		{"-n", s.ns, "link", "set", "eth0", "address", mac},
		{"-n", s.ns, "link", "set", "lo", "up"},
		{"-n", s.ns, "link", "set", "wire", "up"},
		{"-n", s.ns, "link", "set", "eth0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	os.WriteFile(filepath.Join(s.dir, "lease.sh"), []byte(strings.ReplaceAll(clientScript, "LEASES", s.dir)), 0o755)
	s.bridge = exec.Command(probeBin, "tapbridge", tap, hostNS(host), s.ns, "wire")
	pr, pw := io.Pipe()
	s.bridge.Stdout = pw
	if err := s.bridge.Start(); err != nil {
		t.Fatalf("starting probe tapbridge: %v", err)
	}
	// Ready once it has the tap and the packet socket; then its DHCP
	// lines.
	lines := bufio.NewReader(pr)
	if l, err := lines.ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("probe tapbridge did not start: %q %v", l, err)
	}
	go io.Copy(s.dhcp, lines)
	t.Cleanup(func() {
		s.Stop()
		exec.Command("ip", "netns", "delete", s.ns).Run()
	})
	return s
}

func (s *standIn) Run(cmd string, timeout time.Duration) (string, error) {
	c := exec.Command("timeout", fmt.Sprint(int(timeout.Seconds())+1), "ip", "netns", "exec", s.ns, "sh", "-c", cmd)
	c.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	out, err := c.CombinedOutput()
	return string(out), err
}

func (s *standIn) Stop() {
	if s.bridge != nil && s.bridge.Process != nil {
		s.bridge.Process.Kill()
		s.bridge.Wait()
		s.bridge = nil
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// The CNI tests with real clients: cnitool on two hosts, containerd's
// ctr and Podman.

// cnitoolVersion is the cnitool the tests build from the module proxy.
const cnitoolVersion = "v1.3.1"

// buildCnitool installs cnitool into a temporary dir, or skips.
func buildCnitool(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/containernetworking/cni/cnitool@"+cnitoolVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("SKIP: cannot build cnitool %s from the module proxy: %v\n%s", cnitoolVersion, err, out)
	}
	return filepath.Join(dir, "cnitool")
}

// privateCNICache runs argv with a private /var/lib/cni (libcni's cache,
// which cnitool and ctr cannot move) bound over dir, in host's network
// namespace, and returns its output.
func privateCNICache(t *testing.T, host, dir string, env []string, argv ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat("/var/lib/cni"); os.IsNotExist(err) {
		if err := os.MkdirAll("/var/lib/cni", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/var/lib/cni") })
	}
	script := `mount --bind "$1" /var/lib/cni && shift && exec nsenter --net="$@"`
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh", dir, "/run/netns/" + hostNS(host)}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCNICnitool: cnitool adds containers on two hosts: those on the
// same network reach each other, another network is firewalled off, a
// GlobalNetworkPolicy by label lets one in; check and del, nothing left.
func TestCNICnitool(t *testing.T) {
	cnitool := buildCnitool(t)
	lab := NewLab(t, 2, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	lab.Start("host2", "--join", lab.Addr("host1"), "--token", lab.Token("host1"))
	e := newCNIEnv(t, lab)
	cache := t.TempDir()
	confs := map[string]string{}
	for _, h := range []string{"host1", "host2"} {
		dir := filepath.Join(e.conf, h)
		os.MkdirAll(dir, 0o755)
		for name, extra := range map[string]map[string]any{
			"neta": nil,
			"netb": {"args": map[string]any{"cni": map[string]any{"labels": map[string]string{"role": "db"}}}},
		} {
			b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []any{e.calicoConf(h, extra)}})
			os.WriteFile(filepath.Join(dir, name+".conflist"), b, 0o644)
		}
		confs[h] = dir
	}
	tool := func(host string, args ...string) (string, error) {
		return privateCNICache(t, host, cache, []string{"NETCONFPATH=" + confs[host], "CNI_PATH=" + e.bin},
			append([]string{cnitool}, args...)...)
	}
	type ctr struct {
		host, net string
		w         Workload
	}
	ctrs := []*ctr{{host: "host1", net: "neta"}, {host: "host2", net: "neta"}, {host: "host2", net: "netb"}}
	for i, c := range ctrs {
		netns := e.container()
		t.Cleanup(func() { tool(c.host, "del", c.net, netns) })
		out, err := tool(c.host, "add", c.net, netns)
		if err != nil {
			t.Fatalf("cnitool add %s %s on %s: %v\n%s", c.net, netns, c.host, err, out)
		}
		var r current.Result
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):strings.LastIndex(out, "}")+1]), &r); err != nil {
			t.Fatalf("cnitool add printed %q: %v", out, err)
		}
		c.w = Workload{Name: fmt.Sprintf("%s-%d", c.net, i), NetNS: netns}
		for _, ip := range r.IPs {
			c.w.Addresses = append(c.w.Addresses, ip.Address.IP.String())
		}
		lab.serve(c.w)
	}
	a1, a2, b1 := ctrs[0].w, ctrs[1].w, ctrs[2].w
	var cells []Expect
	for _, fam := range []func(Workload) string{Workload.v4, Workload.v6} {
		cells = append(cells, Expect{a1, fam(a2), true}, Expect{a2, fam(a1), true},
			Expect{b1, fam(a1), false}, Expect{a1, fam(b1), false}, Expect{a2, fam(b1), false})
	}
	CheckMatrix(t, cells, 20*time.Second)

	policy := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: db-from-neta}
spec:
  selector: role == "db"
  types: [Ingress]
  ingress: [{action: Allow, protocol: TCP, source: {selector: has(neta)}, destination: {ports: [8080]}}]
`
	f := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(f, []byte(policy), 0o644)
	lab.MustCalico("host1", "apply", "-f", f)
	CheckMatrix(t, []Expect{{a1, b1.v4(), true}, {a2, b1.v6(), true}, {b1, a1.v4(), false}}, 20*time.Second)
	lab.MustCalico("host1", "delete", "-f", f)

	for _, c := range ctrs {
		if out, err := tool(c.host, "check", c.net, c.w.NetNS); err != nil {
			t.Errorf("cnitool check %s on %s: %v\n%s", c.net, c.host, err, out)
		}
		for range 2 {
			if out, err := tool(c.host, "del", c.net, c.w.NetNS); err != nil {
				t.Errorf("cnitool del %s on %s: %v\n%s", c.net, c.host, err, out)
			}
		}
	}
	ipamClean(t, lab, "host1")
	ipamClean(t, lab, "host2")
}

// removeIfNew removes, when the test ends, the paths a runtime makes
// outside its state dirs that did not exist before (runc's root,
// Podman's lock, util-linux's utab dir).
func removeIfNew(t *testing.T, paths ...string) {
	for _, p := range paths {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			t.Cleanup(func() { os.RemoveAll(p) })
		}
	}
}

// busyboxRootfs makes a root filesystem of Debian's busybox-static, or
// skips.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("SKIP: no /bin/busybox for a container's rootfs (Debian: apt-get install busybox-static)")
	}
	r := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(r, d), 0o755)
	}
	b, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(r, "bin/busybox"), b, 0o755)
	if out, err := exec.Command("chroot", r, "/bin/busybox", "--install", "-s").CombinedOutput(); err != nil {
		t.Fatalf("busybox --install: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(r, "etc/passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(r, "etc/group"), []byte("root:x:0:\n"), 0o644)
	for _, f := range []string{"etc/hosts", "etc/resolv.conf", "etc/hostname"} {
		os.WriteFile(filepath.Join(r, f), nil, 0o644)
	}
	return r
}

// cniRuntimeLab is one host running a node, a CLI workload on network
// calico to reach, and calico installed as the host's CNI plugin (into
// a plugin dir and a conf dir of the test's) by `calico install-cni`.
func cniRuntimeLab(t *testing.T) (*Lab, *cniEnv, Workload) {
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	e := newCNIEnv(t, lab)
	out := lab.MustCalico("host1", "install-cni", "--bin-dir", e.bin, "--conf-dir", e.conf, "--network", "calico")
	if !strings.Contains(out, "10-calico.conflist") {
		t.Fatalf("install-cni printed %q", out)
	}
	w := lab.AddWorkload("host1", "peer", "--profile", "calico")
	return lab, e, w
}

// TestCNIContainerd: containerd (Debian's) started by the test with its
// own state dirs and socket in a lab host; `ctr run --cni` runs a busybox
// container from a rootfs dir: eth0 holds a pool address, it reaches a
// workload of its network, and its exit (DEL) leaves nothing.
func TestCNIContainerd(t *testing.T) {
	for _, tool := range []string{"containerd", "ctr", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: no %s (Debian: apt-get install containerd)", tool)
		}
	}
	rootfs := busyboxRootfs(t)
	removeIfNew(t, "/run/runc", "/run/mount")
	lab, e, peer := cniRuntimeLab(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o644)
	// containerd 1.6 keeps shim sockets under /run/containerd whatever
	// its config: a tmpfs there, in a mount namespace of its own.
	made := false
	if _, err := os.Stat("/run/containerd"); os.IsNotExist(err) {
		os.MkdirAll("/run/containerd", 0o711)
		made = true
	}
	d := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs tmpfs /run/containerd && exec nsenter --net=/run/netns/$0 containerd --config $1`, hostNS("host1"), filepath.Join(dir, "config.toml"))
	logf, _ := os.Create(filepath.Join(dir, "containerd.log"))
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Signal(os.Interrupt)
		d.Wait()
		if made {
			os.Remove("/run/containerd")
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Logf("containerd's log:\n%s", tail(string(b), 30))
		}
	})
	// ctr --cni reads only /etc/cni/net.d and /usr/lib/cni: the test's
	// dirs are bound over them, in ctr's own mount namespace.
	removeIfNew(t, "/etc/cni", "/etc/cni/net.d", "/usr/lib/cni")
	os.MkdirAll("/etc/cni/net.d", 0o755)
	os.MkdirAll("/usr/lib/cni", 0o755)
	ctr := func(args ...string) (string, error) {
		return privateCNICache(t, "host1", t.TempDir(), nil, append([]string{"sh", "-c",
			`mount --bind "$1" /etc/cni/net.d && mount --bind "$2" /usr/lib/cni && a=$3 && shift 3 && exec ctr --address "$a" "$@"`,
			"sh", e.conf, e.bin, sock}, args...)...)
	}
	eventually(t, 10*time.Second, "containerd to answer", func() bool { _, err := ctr("version"); return err == nil })
	out, err := ctr("run", "--rm", "--cni", "--fifo-dir", filepath.Join(dir, "fifo"), "--rootfs", rootfs, "cni-t1",
		"/bin/sh", "-c", "ip addr show eth0; ip route; ping -c 1 -W 5 "+peer.v4()+" && echo PEER-OK")
	t.Logf("ctr run:\n%s", out)
	if err != nil {
		t.Fatalf("ctr run --cni: %v", err)
	}
	for _, want := range []string{"inet 10.65.", "default via 169.254.1.1 dev eth0", "PEER-OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("the container's output lacks %q", want)
		}
	}
	ipamClean(t, lab, "host1", peer.Interface)
	if w := endpoints(t, lab, "host1"); len(w) != 1 {
		t.Errorf("endpoints after the container exited: %+v", w)
	}
}

// TestCNIPodman: Podman 4 with network_backend "cni" runs a busybox
// container on network calico (the conflist `calico install-cni` wrote).
func TestCNIPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("SKIP: no podman (Debian: apt-get install podman)")
	}
	rootfs := busyboxRootfs(t)
	removeIfNew(t, "/run/runc", "/run/mount", "/dev/shm/libpod_lock", "/run/containers", "/run/libpod")
	lab, e, peer := cniRuntimeLab(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q
default_network = "calico"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
volume_path = %q
static_dir = %q
runtime = "runc"
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
`, e.bin, e.conf, filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"), filepath.Join(dir, "volumes"), filepath.Join(dir, "root/libpod"))
	os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(conf), 0o644)
	env := []string{"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf")}
	podman := func(args ...string) (string, error) {
		return privateCNICache(t, "host1", t.TempDir(), env, append([]string{"podman", "--root", filepath.Join(dir, "root"),
			"--runroot", filepath.Join(dir, "runroot"), "--storage-driver", "overlay"}, args...)...)
	}
	t.Cleanup(func() {
		podman("rm", "-af")
		exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
	})
	if out, err := podman("info", "--format", "{{.Host.NetworkBackend}}"); err != nil || !strings.Contains(out, "cni") {
		t.Skipf("SKIP: podman does not run with the CNI backend here: %v %s", err, out)
	}
	out, err := podman("run", "--rm", "--network", "calico", "--name", "web-1", "--rootfs", rootfs,
		"/bin/sh", "-c", "ip addr show eth0; ip route; ping -c 1 -W 5 "+peer.v4()+" && echo PEER-OK")
	t.Logf("podman run:\n%s", out)
	if err != nil {
		t.Fatalf("podman run --network calico: %v", err)
	}
	for _, want := range []string{"inet 10.65.", "default via 169.254.1.1 dev eth0", "PEER-OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("the container's output lacks %q", want)
		}
	}
	ipamClean(t, lab, "host1", peer.Interface)
}

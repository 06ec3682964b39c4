package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The Docker tests' harness: each lab host gets a mount namespace of its
// own, where /run/docker/plugins (the only place Docker looks for plugin
// sockets) and /run/containerd (its shims' sockets) are private, and its
// calico node and a dockerd of the test's run there, in the host's
// network namespace. The namespace is a slave of the machine's: the
// machine's mounts (new /run/netns entries) reach it, its own never leak
// out, so neither the machine's Docker (if any) nor another host's sees a
// host's plugins.

// dockerImage is the image the tests run: Debian's busybox-static and a
// static build of the e2e probe, imported from a rootfs (no registry).
const dockerImage = "calico-e2e/busybox:1"

// needDocker skips the test unless Debian's Docker Engine, busybox-static
// and unshare are there.
func needDocker(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"dockerd", "docker", "unshare", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: no %s (Debian: apt-get install docker.io busybox-static)", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("SKIP: no /bin/busybox for the containers' image (Debian: apt-get install busybox-static)")
	}
}

// dockerHost is one lab host's Docker.
type dockerHost struct {
	t    *testing.T
	lab  *Lab
	name string
	dir  string
	// holder keeps the host's mount namespace; mntns is its path.
	holder  *exec.Cmd
	mntns   string
	dockerd *exec.Cmd
}

// newDockerLab builds a lab of hosts hosts in one rack, each with a mount
// namespace of its own for its node and dockerd. Neither is started.
func newDockerLab(t *testing.T, hosts int) (*Lab, []*dockerHost) {
	t.Helper()
	needDocker(t)
	// Mount points and files dockerd makes outside its dirs; the machine
	// gets them back as they were.
	removeIfNew(t, "/run/docker", "/run/containerd", "/etc/docker")
	removeIfNew(t, "/etc/docker/key.json")
	for _, d := range []string{"/run/docker/plugins", "/run/containerd"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lab := NewLab(t, hosts, 1)
	var out []*dockerHost
	for i := 1; i <= hosts; i++ {
		d := &dockerHost{t: t, lab: lab, name: fmt.Sprintf("host%d", i), dir: t.TempDir()}
		d.mountNamespace()
		if err := os.WriteFile(filepath.Join(lab.dir, d.name+".mntns"), []byte(d.mntns), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return lab, out
}

// mountNamespace starts the process that holds the host's mount
// namespace, with its private mounts in place.
func (d *dockerHost) mountNamespace() {
	t := d.t
	os.MkdirAll(filepath.Join(d.dir, "plugins"), 0o755)
	d.holder = exec.Command("unshare", "-m", "--propagation", "slave", "sh", "-c",
		`mount --bind "$0" /run/docker/plugins && mount -t tmpfs tmpfs /run/containerd && echo ready && exec sleep infinity`,
		filepath.Join(d.dir, "plugins"))
	stdout, _ := d.holder.StdoutPipe()
	d.holder.Stderr = os.Stderr
	if err := d.holder.Start(); err != nil {
		t.Fatalf("starting %s's mount namespace: %v", d.name, err)
	}
	t.Cleanup(func() {
		d.holder.Process.Kill()
		d.holder.Wait()
	})
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("%s's mount namespace: its mounts failed", d.name)
	}
	d.mntns = fmt.Sprintf("/proc/%d/ns/mnt", d.holder.Process.Pid)
}

// sock is the host's Docker Engine socket.
func (d *dockerHost) sock() string { return filepath.Join(d.dir, "docker.sock") }

// startNode starts the host's calico node with its plugins, talking to
// the host's dockerd.
func (d *dockerHost) startNode(args ...string) {
	d.t.Helper()
	d.lab.Start(d.name, append([]string{"--docker-socket", d.sock()}, args...)...)
}

// startDockerd starts the host's dockerd and waits until it answers;
// it imports the test image the first time. It is stopped when the test
// ends (its containers removed first, while the node still answers).
func (d *dockerHost) startDockerd() {
	t := d.t
	t.Helper()
	os.WriteFile(filepath.Join(d.dir, "daemon.json"), []byte("{}\n"), 0o644)
	logf, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.dockerd = exec.Command("nsenter", "--mount="+d.mntns, "--net=/run/netns/"+hostNS(d.name), "dockerd",
		"--config-file", filepath.Join(d.dir, "daemon.json"), "-H", "unix://"+d.sock(),
		"--data-root", filepath.Join(d.dir, "data"), "--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "docker.pid"), "--iptables=false", "--ip-forward=false", "--ip-masq=false",
		"--bridge=none", "--userland-proxy=false", "--storage-driver", "overlay2", "--shutdown-timeout", "2")
	d.dockerd.Stdout, d.dockerd.Stderr = logf, logf
	if err := d.dockerd.Start(); err != nil {
		t.Fatalf("starting dockerd on %s: %v", d.name, err)
	}
	cmd := d.dockerd
	t.Cleanup(func() { d.stopDockerd(cmd) })
	eventually(t, 30*time.Second, "dockerd on "+d.name+" to answer", func() bool {
		_, err := d.docker("version")
		return err == nil
	})
	if _, err := d.docker("image", "inspect", dockerImage); err != nil {
		d.importImage()
	}
}

// stopDockerd removes the containers, then stops dockerd (SIGTERM, and
// SIGKILL after 30 s); its log goes to the test's when it failed.
func (d *dockerHost) stopDockerd(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		if ids, err := d.docker("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			d.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	if d.t.Failed() {
		b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
		d.t.Logf("%s's dockerd log:\n%s", d.name, tail(string(b), 30))
	}
}

// restartDockerd stops dockerd (SIGTERM: it stops its containers) and
// starts it again.
func (d *dockerHost) restartDockerd() {
	d.t.Helper()
	d.dockerd.Process.Signal(syscall.SIGTERM)
	if err := d.dockerd.Wait(); err != nil {
		d.t.Logf("dockerd on %s exited: %v", d.name, err)
	}
	d.startDockerd()
}

// importImage builds the test image from a busybox rootfs with the
// probe, statically linked, in it.
func (d *dockerHost) importImage() {
	t := d.t
	t.Helper()
	rootfs := busyboxRootfs(t)
	build := exec.Command("go", "build", "-o", filepath.Join(rootfs, "bin", "probe"), "./probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the probe for the image: %v\n%s", err, out)
	}
	script := `tar -C "$1" -c . | docker -H "unix://$2" import -c 'CMD ["/bin/sh"]' - "$3"`
	cmd := exec.Command("sh", "-c", script, "sh", rootfs, d.sock(), dockerImage)
	cmd.Env = d.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import on %s: %v\n%s", d.name, err, out)
	}
}

func (d *dockerHost) env() []string {
	return append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.dir, "cli"))
}

// docker runs the Docker CLI against the host's dockerd and returns its
// output (stdout and stderr).
func (d *dockerHost) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + d.sock()}, args...)...)
	cmd.Env = d.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustDocker is docker that fails the test on an error, and returns the
// output trimmed.
func (d *dockerHost) mustDocker(args ...string) string {
	d.t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		d.t.Fatalf("docker %s on %s: %v\n%s", strings.Join(args, " "), d.name, err, out)
	}
	return strings.TrimSpace(out)
}

// run starts a container (docker run -d ARGS... IMAGE probe serve 8080)
// and returns it as a Workload: its name, its addresses on network and
// its network namespace as /proc/<pid>/ns/net, so that the lab's
// connectivity checks reach into it from the machine's mount namespace.
func (d *dockerHost) run(name, network string, args ...string) Workload {
	d.t.Helper()
	d.mustDocker(append(append([]string{"run", "-d", "--name", name, "--net", network}, args...), dockerImage, "/bin/probe", "serve", "8080")...)
	return d.container(name, network)
}

// container is a running container as a Workload, with its addresses on
// network.
func (d *dockerHost) container(name, network string) Workload {
	d.t.Helper()
	f := fmt.Sprintf(`{{.State.Pid}} {{with index .NetworkSettings.Networks %q}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`, network)
	fields := strings.Fields(d.mustDocker("inspect", "-f", f, name))
	if len(fields) < 2 {
		d.t.Fatalf("container %s has no address on %s: %q", name, network, fields)
	}
	return Workload{Name: name, NetNS: "/proc/" + fields[0] + "/ns/net", Addresses: fields[1:]}
}

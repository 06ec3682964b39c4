package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"calico/internal/testutil"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// This file holds what the CNI tests share: a plugin dir with calico and
// calico-ipam (links to the binary under test) and the reference
// plugins, conflists, container namespaces, and running the plugin or
// libcni inside a lab host, as a runtime there would.

// refPlugins are the reference plugins the tests chain or delegate from
// (Debian's containernetworking-plugins).
const refPluginDir = "/usr/lib/cni"

// cniEnv is one test's CNI setup on the lab's hosts.
type cniEnv struct {
	t      *testing.T
	lab    *Lab
	bin    string // the plugin dir
	conf   string // the conflist dir
	cache  string // libcni's cache dir
	prefix string // of the container namespaces' names
}

func newCNIEnv(t *testing.T, lab *Lab) *cniEnv {
	t.Helper()
	dir := t.TempDir()
	e := &cniEnv{t: t, lab: lab, bin: filepath.Join(dir, "bin"), conf: filepath.Join(dir, "net.d"), cache: filepath.Join(dir, "cache"),
		prefix: labName() + "-ctr-"}
	for _, d := range []string{e.bin, e.conf, e.cache} {
		os.MkdirAll(d, 0o755)
	}
	for _, n := range []string{"calico", "calico-ipam"} {
		if err := os.Symlink(calicoBin, filepath.Join(e.bin, n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"bridge", "ptp", "portmap", "tuning", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(refPluginDir, n)); err == nil {
			os.Symlink(filepath.Join(refPluginDir, n), filepath.Join(e.bin, n))
		}
	}
	return e
}

// needRef skips the test unless Debian's reference plugins are there.
func (e *cniEnv) needRef(names ...string) {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(e.bin, n)); err != nil {
			e.t.Skipf("SKIP: the %s CNI plugin is not in %s (Debian: apt-get install containernetworking-plugins)", n, refPluginDir)
		}
	}
}

// calicoConf is the calico plugin's config for host's node on network
// net; extra keys are merged in.
func (e *cniEnv) calicoConf(host string, extra map[string]any) map[string]any {
	c := map[string]any{"type": "calico", "data_dir": e.lab.DataDir(host), "log_level": "warning",
		"ipam": map[string]any{"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "true"}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// conflist writes a conflist of the plugins and returns it parsed.
func (e *cniEnv) conflist(name, version string, plugins ...map[string]any) *libcni.NetworkConfigList {
	e.t.Helper()
	b, _ := json.Marshal(map[string]any{"cniVersion": version, "name": name, "plugins": plugins})
	if err := os.WriteFile(filepath.Join(e.conf, "10-"+name+".conflist"), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		e.t.Fatalf("conflist %s: %v", b, err)
	}
	return list
}

// container makes a network namespace for a container and removes it
// when the test ends.
func (e *cniEnv) container() string {
	e.t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := e.prefix + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		e.t.Fatalf("ip netns add %s: %v %s", name, err, out)
	}
	e.t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// libcni is a runtime's CNI library over the test's plugin and cache
// dirs.
func (e *cniEnv) libcni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{e.bin}, e.cache, nil)
}

// in runs f on a thread in host's network namespace: plugins run
// there, as under a runtime on that host.
func (e *cniEnv) in(t *testing.T, host string, f func() error) {
	t.Helper()
	if err := testutil.OpenNetNS(t, hostNS(host)).Do(f); err != nil {
		t.Fatal(err)
	}
}

// pluginRun is one run of a plugin binary.
type pluginRun struct {
	Command, ContainerID, NetNS, IfName, Args string
	// Plugin is the binary's name in the plugin dir (calico).
	Plugin string
	Env    []string
	Stdin  []byte
}

// run runs the plugin as a runtime does (call it inside e.in); it
// returns stdout and the CNI error the plugin printed, if any.
func (e *cniEnv) run(r pluginRun) ([]byte, *types.Error) {
	if r.Plugin == "" {
		r.Plugin = "calico"
	}
	if r.IfName == "" {
		r.IfName = "eth0"
	}
	cmd := exec.Command(filepath.Join(e.bin, r.Plugin))
	cmd.Env = append([]string{"CNI_COMMAND=" + r.Command, "CNI_CONTAINERID=" + r.ContainerID, "CNI_NETNS=" + r.NetNS,
		"CNI_IFNAME=" + r.IfName, "CNI_ARGS=" + r.Args, "CNI_PATH=" + e.bin, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, r.Env...)
	cmd.Stdin = bytes.NewReader(r.Stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err == nil {
		return out.Bytes(), nil
	}
	te := &types.Error{}
	if json.Unmarshal(out.Bytes(), te) != nil {
		te = &types.Error{Code: 1000, Msg: fmt.Sprintf("%v: stdout %q stderr %q", err, out.String(), errb.String())}
	}
	return out.Bytes(), te
}

// pluginConf is one plugin's config as a runtime hands it over: the
// list's name and version injected.
func pluginConf(name, version string, plugin map[string]any) []byte {
	c := map[string]any{"name": name, "cniVersion": version}
	for k, v := range plugin {
		c[k] = v
	}
	b, _ := json.Marshal(c)
	return b
}

// ipamClean checks that host's node finds no leaked address and that
// no cali… interface is left on host but those of want.
func ipamClean(t *testing.T, lab *Lab, host string, want ...string) {
	t.Helper()
	out := lab.MustCalico(host, "ipam", "check", "-o", "json")
	var rep struct {
		Leaked []any `json:"leaked"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Leaked) > 0 {
		t.Errorf("ipam check on %s: %v %s", host, err, out)
	}
	links, _ := lab.Exec(host, "ip", "-o", "link", "show")
	for _, l := range strings.Split(links, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && strings.HasPrefix(f[1], "cali") {
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			found := false
			for _, w := range want {
				found = found || w == name
			}
			if !found {
				t.Errorf("interface %s is left on %s", name, host)
			}
		}
	}
}

// wep is the part of a WorkloadEndpoint the tests read.
type wep struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Node          string   `json:"node"`
		Orchestrator  string   `json:"orchestrator"`
		Workload      string   `json:"workload"`
		ContainerID   string   `json:"containerID"`
		Endpoint      string   `json:"endpoint"`
		InterfaceName string   `json:"interfaceName"`
		IPNetworks    []string `json:"ipNetworks"`
		Profiles      []string `json:"profiles"`
	} `json:"spec"`
}

func endpoints(t *testing.T, lab *Lab, host string) []wep {
	t.Helper()
	var out struct {
		Items []wep `json:"items"`
	}
	if err := json.Unmarshal([]byte(lab.MustCalico(host, "get", "workloadendpoints", "-o", "json")), &out); err != nil {
		t.Fatalf("get workloadendpoints: %v", err)
	}
	return out.Items
}

// ctx10 is a context for one runtime call.
func ctx10() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

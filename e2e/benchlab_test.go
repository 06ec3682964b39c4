package e2e

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/node/api"
	"calico/store/etcdv3"
	"calico/store/ipam"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// This file holds what the policy benchmarks share: endpoints made in
// bulk, a direct etcd client, the node's status, `calico apply`, and a
// look at the nftables table of a lab host.

// hostNS is the name of host's network namespace.
func hostNS(host string) string { return labName() + "-" + host }

// labEtcd is a client of the lab cluster's etcd with host's certificate.
// The members listen on lab addresses, which only the lab's namespaces
// reach, so it dials from host's namespace.
func labEtcd(t *testing.T, lab *Lab, host string) *clientv3.Client {
	t.Helper()
	dir := lab.DataDir(host)
	var members struct {
		Endpoints []string `json:"endpoints"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "members.json"))
	if err == nil {
		err = json.Unmarshal(b, &members)
	}
	if err != nil {
		t.Fatalf("reading %s's members.json: %v", host, err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "pki", "node.crt"), filepath.Join(dir, "pki", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ns := testutil.OpenNetNS(t, hostNS(host))
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   members.Endpoints,
		TLS:         &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
	})
	if err != nil {
		t.Fatalf("connecting to %s's etcd: %v", host, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// benchEndpoint is a workload endpoint made in bulk.
type benchEndpoint struct {
	Workload  string
	Namespace string
	Labels    map[string]string
	Profiles  []string
}

// ifaceName is a host-side interface name as Calico makes them: "cali"
// and 11 hex digits of a hash.
func ifaceName(parts ...string) string {
	sum := sha1.Sum([]byte(strings.Join(parts, ".")))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

// addBulkEndpoints makes local workload endpoints on host the cheap way,
// and returns their IPv4 addresses. Each is what `calico workload add`
// makes, minus a namespace of its own: addresses from IPAM (one per
// pool family, from the host's own blocks), a veth pair whose host side
// cali… is up (its peer lies in one namespace shared by all of them), and
// a WorkloadEndpoint, all of them written with one `calico apply`. The
// agent programs them as any other: a route each, the dispatch maps, the
// sets. (`workload add` costs one full dataplane calculation per
// workload on every host, minutes for thousands.)
func addBulkEndpoints(t *testing.T, lab *Lab, cli *clientv3.Client, host string, eps []benchEndpoint) []string {
	t.Helper()
	ctx := context.Background()
	st := nodeStatus(t, lab, host)
	var pools []ipam.Pool
	for _, p := range st.Pools {
		if !p.Disabled {
			pools = append(pools, ipam.Pool{CIDR: netip.MustParsePrefix(p.CIDR), BlockSize: p.BlockSize})
		}
	}
	im := ipam.New(cli)
	fill := hostNS(host) + "-fill"
	if out, err := exec.Command("ip", "netns", "add", fill).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v %s", fill, err, out)
	}
	var links, peers, items []string
	var v4s []string
	for i, ep := range eps {
		handle := fmt.Sprintf("bench.%s.%s.%s", host, ep.Namespace, ep.Workload)
		attrs := map[string]string{"node": host, "namespace": ep.Namespace, "workload": ep.Workload}
		var nets []string
		for _, p := range pools {
			a, err := im.AutoAssign(ctx, handle, host, []ipam.Pool{p}, attrs)
			if err != nil {
				t.Fatalf("assigning an address to %s: %v", ep.Workload, err)
			}
			nets = append(nets, netip.PrefixFrom(a, a.BitLen()).String())
			if a.Is4() {
				v4s = append(v4s, a.String())
			}
		}
		iface := ifaceName(host, ep.Namespace, ep.Workload)
		links = append(links, fmt.Sprintf("link add %s type veth peer name e%d netns %s", iface, i, fill), "link set "+iface+" up")
		peers = append(peers, fmt.Sprintf("link set e%d up", i))
		item, _ := json.Marshal(map[string]any{
			"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
			"metadata": map[string]any{
				"name":      wepName(host, "k8s", ep.Workload, "eth0"),
				"namespace": ep.Namespace, "labels": ep.Labels,
			},
			"spec": map[string]any{
				"orchestrator": "k8s", "node": host, "workload": ep.Workload, "endpoint": "eth0",
				"interfaceName": iface, "ipNetworks": nets, "profiles": ep.Profiles,
			},
		})
		items = append(items, string(item))
	}
	ipBatch(t, hostNS(host), links)
	ipBatch(t, fill, peers)
	// One apply is one transaction of at most etcdv3.MaxBatch resources.
	for len(items) > 0 {
		n := min(len(items), etcdv3.MaxBatch)
		setupApply(t, lab, host, "{\"apiVersion\":\"projectcalico.org/v3\",\"kind\":\"List\",\"items\":[\n"+strings.Join(items[:n], ",\n")+"]}\n")
		items = items[n:]
	}
	return v4s
}

// wepName is the WorkloadEndpoint name Calico derives.
func wepName(node, orchestrator, workload, endpoint string) string {
	parts := []string{node, orchestrator, workload, endpoint}
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "-", "--")
	}
	return strings.Join(parts, "-")
}

// ipBatch runs `ip -batch` in namespace ns.
func ipBatch(t *testing.T, ns string, lines []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ip-batch")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns, "-batch", f).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s -batch: %v %s", ns, err, tail(string(out), 5))
	}
}

// setupApply is calicoApply for a benchmark's setup: on a machine shared
// with other labs an apply's reads before its transaction may time out,
// and then nothing was written; it is tried up to three times.
func setupApply(t *testing.T, lab *Lab, host, doc string) {
	t.Helper()
	for try := 1; ; try++ {
		out, err := tryApply(lab, host, doc)
		if err == nil {
			return
		}
		if try == 3 || !strings.Contains(out, "context deadline exceeded") {
			t.Fatalf("calico apply on %s: %v\n%s", host, err, tail(out, 10))
		}
		t.Logf("calico apply on %s timed out (try %d); again", host, try)
	}
}

// tryApply runs `calico apply -f` of doc against host's node and
// returns its output.
func tryApply(lab *Lab, host, doc string) (string, error) {
	cmd := exec.Command(calicoBin, "apply", "-f", "-")
	cmd.Env = append(os.Environ(), "CALICO_DATA_DIR="+lab.DataDir(host))
	cmd.Stdin = strings.NewReader(doc)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// calicoApply runs `calico apply -f` of doc against host's node and
// returns how long the command took.
func calicoApply(t *testing.T, lab *Lab, host, doc string) time.Duration {
	t.Helper()
	cmd := exec.Command(calicoBin, "apply", "-f", "-")
	cmd.Env = append(os.Environ(), "CALICO_DATA_DIR="+lab.DataDir(host))
	cmd.Stdin = strings.NewReader(doc)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("calico apply on %s: %v\n%s", host, err, tail(string(out), 10))
	}
	return took
}

// nodeStatus is host's status as its API reports it.
func nodeStatus(t *testing.T, lab *Lab, host string) api.Status {
	t.Helper()
	st, err := tryStatus(lab, host)
	if err != nil {
		t.Fatalf("status of %s: %v", host, err)
	}
	return st
}

func tryStatus(lab *Lab, host string) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st api.Status
	err := api.NewClient(lab.DataDir(host)).Do(ctx, "GET", "/v1/status", nil, nil, &st)
	return st, err
}

// waitProgrammed waits until host's last dataplane apply succeeded with
// endpoints local endpoints and at least policies policy chains, and the
// next apply changed nothing of that.
func waitProgrammed(t *testing.T, lab *Lab, host string, endpoints, policies int, within time.Duration) api.Status {
	t.Helper()
	var st api.Status
	eventually(t, within, fmt.Sprintf("%s programmed with %d endpoints", host, endpoints), func() bool {
		var err error
		st, err = tryStatus(lab, host)
		return err == nil && st.Dataplane.Error == "" && st.Dataplane.Endpoints == endpoints && st.Dataplane.Policies >= policies
	})
	return st
}

// tableCounts sums up host's table inet calico as the kernel holds it.
type tableCounts struct {
	Chains, Rules, Sets, Elements int
	// Largest is the number of elements of the largest set.
	Largest int
}

func (c tableCounts) String() string {
	return fmt.Sprintf("%d chains, %d rules, %d sets and maps holding %d elements", c.Chains, c.Rules, c.Sets, c.Elements)
}

// readTable counts what host's table holds, through netlink (the lab
// needs no nft binary).
func readTable(host string) (tableCounts, error) {
	var out tableCounts
	h, err := netns.GetFromName(hostNS(host))
	if err != nil {
		return out, err
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return out, err
	}
	table := &nftables.Table{Name: "calico", Family: nftables.TableFamilyINet}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return out, err
	}
	for _, ch := range chains {
		if ch.Table.Name != "calico" {
			continue
		}
		out.Chains++
		rules, err := c.GetRules(table, ch)
		if err != nil {
			return out, err
		}
		out.Rules += len(rules)
	}
	sets, err := c.GetSets(table)
	if err != nil {
		return out, err
	}
	for _, s := range sets {
		if s.Anonymous {
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return out, err
		}
		out.Sets++
		out.Elements += len(elems)
		out.Largest = max(out.Largest, len(elems))
	}
	return out, nil
}

// deleteTable deletes host's table inet calico.
func deleteTable(t *testing.T, host string) {
	t.Helper()
	h, err := netns.GetFromName(hostNS(host))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(&nftables.Table{Name: "calico", Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil {
		t.Fatalf("deleting %s's table: %v", host, err)
	}
}

// appliedLine is one "applied" debug line of the agent: when an apply
// ended, at which datastore revision, and its parts.
type appliedLine struct {
	At                     time.Time
	Revision               int64
	Calc, NFT, BGP, Routes time.Duration
	// Input is the time spent taking the input from the cache, before
	// the calculation (not in Start).
	Input time.Duration
}

// Start is when the apply started (the log's clock has milliseconds).
func (a appliedLine) Start() time.Time { return a.At.Add(-a.Calc - a.NFT - a.BGP - a.Routes) }

// appliedRE is the agent's log line of a pass (node/agent: apply). Its
// bgp= came later: a benchmark that reads these must fail, not report
// nothing, when the line changes (scaleBench.churn, appliedLines).
var appliedRE = regexp.MustCompile(`^time=(\S+) level=DEBUG msg=applied component=agent revision=(\d+) calc=(\S+) nft=(\S+) (?:bgp=(\S+) )?routes=(\S+)(?: input=(\S+))?`)

// appliedLines reads the agent's applies from host's log (the node runs
// with --log-level debug), from byte offset from on.
func appliedLines(t *testing.T, lab *Lab, host string, from int64) []appliedLine {
	t.Helper()
	var out []appliedLine
	err := scanLog(lab, host, from, func(line string) bool {
		m := appliedRE.FindStringSubmatch(line)
		if m == nil {
			return true
		}
		a, err := parseApplied(m)
		if err != nil {
			t.Fatalf("reading %q: %v", line, err)
		}
		out = append(out, a)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parseApplied reads appliedRE's match of a line.
func parseApplied(m []string) (appliedLine, error) {
	var a appliedLine
	var errs [7]error
	a.At, errs[0] = time.Parse(time.RFC3339Nano, m[1])
	_, errs[1] = fmt.Sscan(m[2], &a.Revision)
	a.Calc, errs[2] = time.ParseDuration(m[3])
	a.NFT, errs[3] = time.ParseDuration(m[4])
	if m[5] != "" {
		a.BGP, errs[4] = time.ParseDuration(m[5])
	}
	a.Routes, errs[5] = time.ParseDuration(m[6])
	if m[7] != "" {
		a.Input, errs[6] = time.ParseDuration(m[7])
	}
	return a, errors.Join(errs[:]...)
}

// scanLog calls fn with each line of host's log from byte offset from
// on, until fn returns false.
func scanLog(lab *Lab, host string, from int64, fn func(line string) bool) error {
	f, err := os.Open(filepath.Join(lab.dir, host+".log"))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() && fn(sc.Text()) {
	}
	return sc.Err()
}

// logSize is how far host's log has grown.
func logSize(lab *Lab, host string) int64 {
	fi, err := os.Stat(filepath.Join(lab.dir, host+".log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// labLaunched is when lab.sh last launched host's node process.
func labLaunched(t *testing.T, lab *Lab, host string) time.Time {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lab.dir, host+".launched"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s.launched: %v", host, err)
	}
	return time.Unix(0, ns)
}

// readyLine is when host's node logged that it was ready (the API
// answers and the dataplane is programmed), the first time from byte
// offset from of its log on.
func readyLine(lab *Lab, host string, from int64) (time.Time, error) {
	var m []string
	err := scanLog(lab, host, from, func(line string) bool {
		m = readyRE.FindStringSubmatch(line)
		return m == nil
	})
	switch {
	case err != nil:
		return time.Time{}, err
	case m == nil:
		return time.Time{}, fmt.Errorf("%s's log logs no %q after byte %d", host, readyRE, from)
	}
	return time.Parse(time.RFC3339Nano, m[1])
}

var readyRE = regexp.MustCompile(`^time=(\S+) level=INFO msg="ready: the API answers`)

// percentile of sorted durations (nearest rank below).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

// medianRange is "median (min-max)" of durations (at least one).
func medianRange(ds []time.Duration) string {
	s := slices.Sorted(slices.Values(ds))
	return fmt.Sprintf("%s (%s-%s)", ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
}

func medianOf(d []time.Duration) time.Duration {
	return percentile(slices.Sorted(slices.Values(d)), 0.5)
}

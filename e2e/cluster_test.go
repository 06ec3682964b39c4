package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The cluster tests: hosts join a cluster, lose a voter, restart
// together, are refused with the wrong token, keep gossip and etcd to
// themselves on the wire, and leave.

var clusterPools = []string{"--pool", "10.65.0.0/16", "--pool", "fd00:65::/48"}

// hostNames is host1 … hostN.
func hostNames(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("host%d", i+1)
	}
	return hs
}

// formCluster founds a cluster on host1 and joins the other hosts to it,
// one by one, or with together hosts 2 to 4 at the same moment and then
// the rest one by one. Every host gets extra as further `calico up`
// arguments. It returns the token once every host sees every other alive,
// with three voters.
func formCluster(t *testing.T, lab *Lab, hosts []string, together bool, extra ...string) string {
	t.Helper()
	start := time.Now()
	lab.Start(hosts[0], append(slices.Clone(clusterPools), extra...)...)
	if !strings.Contains(lab.Log(hosts[0]), "other hosts join with: calico up --join "+lab.Addr(hosts[0])+" --token $(calico token)") {
		t.Errorf("%s's log does not say how to join:\n%s", hosts[0], lab.Log(hosts[0]))
	}
	token := lab.Token(hosts[0])
	if strings.Contains(lab.Log(hosts[0]), token) {
		t.Errorf("%s's log shows the join token", hosts[0])
	}
	join := append([]string{"--join", lab.Addr(hosts[0]), "--token", token}, extra...)
	rest := hosts[1:]
	if together {
		if err := startAll(lab, hosts[1:min(4, len(hosts))], join...); err != nil {
			t.Fatal(err)
		}
		rest = hosts[min(4, len(hosts)):]
	}
	for _, h := range rest {
		lab.Start(h, join...)
	}
	started := time.Since(start)
	settledIn := waitFor(t, 90*time.Second, "the cluster to settle", func() (bool, string) { return settled(lab, hosts, nil) })
	t.Logf("formed a cluster of %d hosts: every node up in %s, settled %s later", len(hosts), started.Round(time.Millisecond), settledIn.Round(time.Millisecond))
	return token
}

// startAll starts hosts at the same moment and waits for all of them.
func startAll(lab *Lab, hosts []string, args ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Go(func() { errs[i] = lab.StartErr(h, args...) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitFor polls check until it holds or within passes, and returns how
// long it took. check returns what it saw, for the failure message.
func waitFor(t *testing.T, within time.Duration, what string, check func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, seen := check()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", within, what, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settled reports whether every host in hosts sees one cluster of them:
// every one alive, three voters, the rest clients, and each host in gone
// either absent or marked left.
func settled(lab *Lab, hosts, gone []string) (bool, string) {
	for _, h := range hosts {
		nodes, err := lab.Nodes(h)
		if err != nil {
			return false, err.Error()
		}
		if problem := checkView(nodes, hosts, gone); problem != "" {
			return false, fmt.Sprintf("%s sees %s: %s", h, describe(nodes), problem)
		}
	}
	return true, ""
}

// checkView says what is wrong with one host's node list, or "".
func checkView(nodes []NodeInfo, hosts, gone []string) string {
	voters := 0
	seen := map[string]bool{}
	for _, n := range nodes {
		switch {
		case slices.Contains(hosts, n.Name):
			seen[n.Name] = true
			if n.Gossip != "alive" {
				return n.Name + " is " + n.Gossip
			}
			switch n.Role {
			case "voter":
				voters++
			case "client":
			default:
				return n.Name + " is a " + n.Role
			}
		case slices.Contains(gone, n.Name):
			if n.Gossip != "left" || n.Role != "client" {
				return fmt.Sprintf("%s left but is listed as %s/%s", n.Name, n.Role, n.Gossip)
			}
		default:
			return "unexpected node " + n.Name
		}
	}
	if len(seen) != len(hosts) {
		return fmt.Sprintf("%d of %d hosts", len(seen), len(hosts))
	}
	if want := min(3, len(hosts)); voters != want {
		return fmt.Sprintf("%d voters, want %d", voters, want)
	}
	return ""
}

func describe(nodes []NodeInfo) string {
	var b strings.Builder
	for i, n := range nodes {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%s/%s", n.Name, n.Role, n.Gossip)
	}
	return "[" + b.String() + "]"
}

// roles maps each node to its role as host sees it.
func roles(t *testing.T, lab *Lab, host string) map[string]string {
	t.Helper()
	nodes, err := lab.Nodes(host)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range nodes {
		out[n.Name] = n.Role
	}
	return out
}

// withRole lists the hosts that have role, in host order.
func withRole(rs map[string]string, role string) []string {
	var out []string
	for n, r := range rs {
		if r == role {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// clusterID checks that every host reports the same cluster id and
// returns it.
func clusterID(t *testing.T, lab *Lab, hosts []string) string {
	t.Helper()
	ids := map[string][]string{}
	var id string
	for _, h := range hosts {
		st := status(t, lab, h)
		id = st.ClusterID
		ids[st.ClusterID] = append(ids[st.ClusterID], h)
	}
	if len(ids) != 1 || id == "" {
		t.Fatalf("the hosts report different cluster ids: %v", ids)
	}
	return id
}

// status is `calico status -o json` on host. It must answer at once; a
// failure is reported, and status retried for a while so the test can go
// on.
func status(t *testing.T, lab *Lab, host string) NodeStatus {
	t.Helper()
	st, err := lab.Status(host)
	if err == nil {
		return st
	}
	t.Errorf("calico %v", err)
	took := waitFor(t, 30*time.Second, "calico status to answer on "+host, func() (bool, string) {
		st, err = lab.Status(host)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Logf("calico status on %s answered %s later: datastore endpoints %v, %d members, error %q",
		host, took.Round(time.Millisecond), st.Datastore.Endpoints, st.Datastore.Members, st.Datastore.Error)
	return st
}

// write adds a profile from host, retrying until it succeeds or within
// passes, and returns how long it took from start. A profile that exists
// counts: an earlier attempt that timed out got through.
func write(lab *Lab, host, profile string, start time.Time, within time.Duration) (time.Duration, error) {
	for {
		_, errs, err := lab.CalicoWithin(5*time.Second, host, "profile", "add", profile)
		if err == nil || strings.Contains(errs, "already exists") {
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return time.Since(start), fmt.Errorf("profile add %s on %s: %v: %s", profile, host, err, strings.TrimSpace(errs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeEverywhere writes profile prefix-HOST from every host at once and
// returns how long each took, from start.
func writeEverywhere(t *testing.T, lab *Lab, hosts []string, prefix string, start time.Time, within time.Duration) map[string]time.Duration {
	t.Helper()
	took := make([]time.Duration, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { took[i], errs[i] = write(lab, h, prefix+h, start, within) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for i, h := range hosts {
		out[h] = took[i]
	}
	return out
}

// hasProfiles waits until host lists every profile prefix-H for H in hosts.
func hasProfiles(t *testing.T, lab *Lab, host string, hosts []string, prefix string) {
	t.Helper()
	waitFor(t, 10*time.Second, host+" to list every host's profile", func() (bool, string) {
		out, errs, err := lab.CalicoWithin(10*time.Second, host, "profile", "list")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, errs)
		}
		for _, h := range hosts {
			if !strings.Contains(out, prefix+h) {
				return false, out
			}
		}
		return true, ""
	})
}

// TestClusterJoin: five hosts, three of them joining at the same moment,
// make one cluster of three voters and two clients, every host can write,
// and every member hands out the same token.
func TestClusterJoin(t *testing.T) {
	lab := NewLab(t, 5, 1)
	hosts := hostNames(5)
	token := formCluster(t, lab, hosts, true)

	rs := roles(t, lab, "host1")
	t.Logf("roles: voters %v, clients %v", withRole(rs, "voter"), withRole(rs, "client"))
	clusterID(t, lab, hosts)
	for h, took := range writeEverywhere(t, lab, hosts, "p-", time.Now(), 10*time.Second) {
		t.Logf("write from %s took %s", h, took.Round(time.Millisecond))
	}
	hasProfiles(t, lab, "host1", hosts, "p-")
	for _, h := range hosts {
		if got := lab.Token(h); got != token {
			t.Errorf("calico token on %s printed %q; host1 printed %q", h, got, token)
		}
	}
}

// TestClusterVoterLoss: the founder's host dies (every other host was
// given its etcd endpoint when it joined); the others keep writing at
// once, declare it dead, give its seat to a client, and take it back as a
// client when it returns.
func TestClusterVoterLoss(t *testing.T) {
	lab := NewLab(t, 5, 1)
	hosts := hostNames(5)
	replace := []string{"--voter-replace-after", "10s"}
	formCluster(t, lab, hosts, false, replace...)
	victim := "host1"
	survivors := hosts[1:]
	before := roles(t, lab, survivors[0])
	voters := withRole(before, "voter")
	if before[victim] != "voter" {
		t.Fatalf("the founder %s is %s; want a voter", victim, before[victim])
	}
	id := clusterID(t, lab, hosts)
	st := status(t, lab, survivors[0])
	t.Logf("voters %v, clients %v, etcd leader %s; killing %s at once", voters, withRole(before, "client"), st.Datastore.Leader, victim)

	lab.KillNow(victim)
	killed := time.Now()

	// Writes go on from the other voters and the clients: two voters of
	// three are a quorum.
	for h, took := range writeEverywhere(t, lab, survivors, "loss-", killed, 30*time.Second) {
		t.Logf("first write from %s (%s) succeeded %s after the kill", h, before[h], took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("a write from %s (%s) took %s after the kill; want within 5s", h, before[h], took.Round(time.Millisecond))
		}
	}

	// Gossip declares it dead everywhere.
	waitFor(t, 60*time.Second, "every survivor to see "+victim+" dead", func() (bool, string) {
		for _, h := range survivors {
			nodes, err := lab.Nodes(h)
			if err != nil {
				return false, err.Error()
			}
			for _, n := range nodes {
				if n.Name == victim && n.Gossip != "dead" {
					return false, h + " sees " + describe(nodes)
				}
			}
		}
		return true, ""
	})
	dead := time.Since(killed)
	t.Logf("every survivor saw %s dead %s after the kill", victim, dead.Round(time.Millisecond))

	// `calico status` answers while a voter is down: that is when it is
	// needed most.
	for _, h := range survivors {
		if st, err := lab.Status(h); err != nil {
			t.Errorf("with %s down: calico %v", victim, err)
		} else if !st.Datastore.Healthy {
			t.Errorf("with %s down, %s's status says the datastore is unhealthy: %s", victim, h, st.Datastore.Error)
		}
	}

	// A client takes the seat within VoterReplaceAfter and a minute.
	waitFor(t, 70*time.Second, "three voters again", func() (bool, string) {
		for _, h := range survivors {
			nodes, err := lab.Nodes(h)
			if err != nil {
				return false, err.Error()
			}
			if problem := checkView(slices.DeleteFunc(slices.Clone(nodes), func(n NodeInfo) bool { return n.Name == victim }), survivors, nil); problem != "" {
				return false, h + " sees " + describe(nodes) + ": " + problem
			}
			for _, n := range nodes {
				if n.Name == victim && (n.Role != "client" || n.Gossip != "dead") {
					return false, h + " sees " + describe(nodes)
				}
			}
		}
		return true, ""
	})
	after := roles(t, lab, survivors[0])
	promoted := slices.DeleteFunc(withRole(after, "voter"), func(h string) bool { return before[h] == "voter" })
	t.Logf("three voters again %s after the kill (%s after it was declared dead): %v took the seat; voters %v",
		time.Since(killed).Round(time.Millisecond), (time.Since(killed) - dead).Round(time.Millisecond), promoted, withRole(after, "voter"))

	// It comes back as a client of the same cluster.
	lab.Kill(victim) // lab.sh's bookkeeping
	lab.Start(victim, replace...)
	back := waitFor(t, 60*time.Second, victim+" to come back as a client", func() (bool, string) { return settled(lab, hosts, nil) })
	t.Logf("%s back as a client %s after it started", victim, back.Round(time.Millisecond))
	if rs := roles(t, lab, survivors[0]); rs[victim] != "client" {
		t.Errorf("%s came back as %s; want client", victim, rs[victim])
	}
	if got := clusterID(t, lab, hosts); got != id {
		t.Errorf("cluster id is %s after the return; was %s", got, id)
	}
	if st = status(t, lab, victim); st.Role != "client" || !st.Datastore.Healthy {
		t.Errorf("%s's status: role %s, datastore healthy %v (%s); want a client with a healthy datastore", victim, st.Role, st.Datastore.Healthy, st.Datastore.Error)
	}
	if _, err := write(lab, victim, "back-"+victim, time.Now(), 10*time.Second); err != nil {
		t.Error(err)
	}
	hasProfiles(t, lab, victim, survivors, "loss-")
}

// TestClusterRestartAll: every host stops, then they start in reverse
// order, the voters last; the cluster and its data come back.
func TestClusterRestartAll(t *testing.T) {
	lab := NewLab(t, 5, 1)
	hosts := hostNames(5)
	formCluster(t, lab, hosts, false)
	id := clusterID(t, lab, hosts)
	writeEverywhere(t, lab, hosts, "p-", time.Now(), 10*time.Second)

	start := time.Now()
	for _, h := range hosts {
		lab.Stop(h)
	}
	t.Logf("stopped every host in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	for _, h := range slices.Backward(hosts) {
		// lab.sh start returns once `calico status` answers, which it
		// must with or without a quorum; carry on past a failure to see
		// whether the cluster comes back.
		began := time.Now()
		if err := lab.StartWithin(30*time.Second, h); err != nil {
			t.Error(err)
		}
		t.Logf("lab.sh start %s took %s", h, time.Since(began).Round(time.Millisecond))
	}
	t.Logf("started every host again, host5 first, in %s", time.Since(start).Round(time.Millisecond))
	took := waitFor(t, 90*time.Second, "the cluster to settle after the restart", func() (bool, string) { return settled(lab, hosts, nil) })
	t.Logf("settled %s after the last host started", took.Round(time.Millisecond))
	if got := clusterID(t, lab, hosts); got != id {
		t.Errorf("cluster id is %s after the restart; was %s", got, id)
	}
	for _, h := range hosts {
		hasProfiles(t, lab, h, hosts, "p-")
	}
	writeEverywhere(t, lab, hosts, "again-", time.Now(), 20*time.Second)
}

// TestClusterRefusals: `calico up --join` with a wrong token, or against
// a member of another cluster, or against nothing, fails with a one-line
// error and leaves the data dir without a cluster.
func TestClusterRefusals(t *testing.T) {
	lab := NewLab(t, 3, 1)
	lab.Start("host1", clusterPools...)
	lab.Start("host3", "--pool", "10.66.0.0/16")
	tokA, tokB := lab.Token("host1"), lab.Token("host3")
	if tokA == tokB {
		t.Fatalf("two clusters have the same token %s", tokA)
	}
	hash, secret, _ := strings.Cut(tokA, "::")
	wrong := hash + "::" + strings.Repeat("0", len(secret))

	for _, c := range []struct {
		what        string
		seed, token string
		want        string
	}{
		{"a wrong secret", lab.Addr("host1"), wrong, "refused the token's secret: wrong token"},
		{"another cluster's token", lab.Addr("host1"), tokB, "its CA does not match the token's hash"},
		{"a seed of another cluster", lab.Addr("host3"), tokA, "its CA does not match the token's hash"},
		{"a seed that is not there", "172.31.1.99", tokA, "cannot reach its join API"},
	} {
		t.Run(strings.ReplaceAll(c.what, " ", "-"), func(t *testing.T) {
			start := time.Now()
			out, errs, exited, err := lab.Up(10*time.Second, "host2", "--join", c.seed, "--token", c.token)
			if !exited {
				t.Errorf("calico up --join %s with %s did not exit within 10s (it did on SIGTERM: %v)", c.seed, c.what, err)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
				t.Fatalf("calico up --join %s with %s: %v; want a non-zero exit\nstdout:\n%s\nstderr:\n%s", c.seed, c.what, err, out, errs)
			}
			var lines []string
			for _, l := range strings.Split(errs, "\n") {
				if strings.Contains(l, c.want) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Errorf("calico up --join %s with %s: stderr has %d lines containing %q; want one\nstderr:\n%s", c.seed, c.what, len(lines), c.want, errs)
			} else {
				t.Logf("refused in %s (exit %d): %s", time.Since(start).Round(time.Millisecond), exit.ExitCode(), lines[0])
			}
			for _, f := range []string{"node.json", "pki", "etcd"} {
				if _, err := os.Stat(filepath.Join(lab.DataDir("host2"), f)); !os.IsNotExist(err) {
					t.Errorf("after the refusal host2's data dir has %s (%v)", f, err)
				}
			}
		})
	}
	// The refusals changed nothing on either cluster.
	for _, h := range []string{"host1", "host3"} {
		nodes, err := lab.Nodes(h)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || nodes[0].Name != h {
			t.Errorf("after the refusals %s sees %s; want itself alone", h, describe(nodes))
		}
	}
	// And the refused host can still join with the right token.
	lab.Start("host2", "--join", lab.Addr("host1"), "--token", tokA)
	waitFor(t, 30*time.Second, "host1 to see host2 alive", func() (bool, string) {
		nodes, err := lab.Nodes("host1")
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.Name == "host2" && n.Gossip == "alive" {
				return true, ""
			}
		}
		return false, describe(nodes)
	})
	if st := status(t, lab, "host2"); st.ClusterID != clusterID(t, lab, []string{"host1"}) {
		t.Errorf("host2 after joining is in cluster %s; want host1's", st.ClusterID)
	}
}

// TestClusterWire: gossip is encrypted (no node name crosses the fabric
// in clear) and etcd refuses a client without the cluster's certificate.
func TestClusterWire(t *testing.T) {
	lab := NewLab(t, 3, 1)
	hosts := hostNames(3)
	formCluster(t, lab, hosts, false)

	// A canary in clear, sent while capturing, shows the capture would
	// see a name.
	const canary = "calico-e2e-canary"
	to := lab.Addr("host2") + ":9"
	go func() {
		time.Sleep(time.Second) // into the capture
		lab.Exec("host1", probeBin, "udp", to, canary)
	}()
	frames, err := capture(labName()+"-fabric", 5*time.Second)
	if err != nil {
		t.Fatalf("capturing on the fabric: %v", err)
	}
	counts := map[string]int{}
	sawCanary := false
	for _, f := range frames {
		if bytes.Contains(f, []byte(canary)) {
			sawCanary = true
			continue
		}
		proto, sport, dport, ok := transport(f)
		port := "other"
		if ok && (sport == 7946 || dport == 7946) {
			port = proto + "/7946"
		} else if ok {
			port = fmt.Sprintf("%s/%d", proto, min(sport, dport))
		}
		counts[port]++
		for _, h := range hosts {
			if bytes.Contains(f, []byte(h)) {
				t.Errorf("a frame (%s %d->%d) carries %q in clear: %q", proto, sport, dport, h, f)
			}
		}
	}
	t.Logf("captured %d frames in 5s: %v", len(frames), counts)
	if !sawCanary {
		t.Errorf("the capture missed the canary datagram sent in clear")
	}
	if counts["udp/7946"] == 0 {
		t.Errorf("saw no gossip (udp/7946) among %d frames: the check saw nothing to check", len(frames))
	}

	for _, addr := range []string{lab.Addr("host2") + ":2379", lab.Addr("host2") + ":2380"} {
		out, err := lab.Exec("host1", probeBin, "tlsnocert", addr)
		var exit *exec.ExitError
		switch {
		case err == nil && strings.Contains(out, "certificate"):
			t.Logf("%s without a client certificate: %s", addr, strings.TrimSpace(out))
		case err == nil:
			t.Errorf("%s failed a client without a certificate, but not for the certificate: %s", addr, out)
		case errors.As(err, &exit) && exit.ExitCode() == 1:
			t.Errorf("%s accepted a client without a certificate: %s", addr, out)
		default:
			t.Errorf("probing %s: %v: %s", addr, err, out)
		}
	}
}

// TestClusterLeave: a client leaves (refused while it has a workload,
// then with --force), then a voter leaves and a client takes its seat.
func TestClusterLeave(t *testing.T) {
	lab := NewLab(t, 5, 1)
	hosts := hostNames(5)
	formCluster(t, lab, hosts, false)
	rs := roles(t, lab, "host1")
	clients := withRole(rs, "client")
	if len(clients) != 2 {
		t.Fatalf("roles %v; want two clients", rs)
	}
	client := clients[len(clients)-1]

	var w Workload
	if err := json.Unmarshal([]byte(lab.MustCalico(client, "workload", "add", "w1", "-o", "json")), &w); err != nil || len(w.Addresses) != 2 {
		t.Fatalf("workload add w1 on %s: %+v, %v", client, w, err)
	}
	out, errs, err := lab.CalicoWithin(30*time.Second, client, "leave")
	if err == nil || !strings.Contains(errs, "workload") {
		t.Fatalf("calico leave on %s with a workload: %v, stdout %q, stderr %q; want a refusal naming the workloads", client, err, out, errs)
	}
	t.Logf("leave with a workload: %s", strings.TrimSpace(errs))
	if _, err := lab.Nodes(client); err != nil {
		t.Fatalf("the refused leave stopped %s's node: %v", client, err)
	}

	start := time.Now()
	if out, errs, err := lab.CalicoWithin(90*time.Second, client, "leave", "--force"); err != nil {
		t.Fatalf("calico leave --force on %s: %v\n%s%s", client, err, out, errs)
	}
	t.Logf("%s left in %s", client, time.Since(start).Round(time.Millisecond))
	exited(t, lab, client)
	if _, err := os.Stat(w.NetNS); !os.IsNotExist(err) {
		t.Errorf("workload w1's namespace %s is still there after leave --force (%v)", w.NetNS, err)
	}
	if _, err := os.Stat(filepath.Join(lab.DataDir(client), "node.json")); !os.IsNotExist(err) {
		t.Errorf("%s's data dir still has node.json after it left (%v)", client, err)
	}
	for _, f := range []string{"node.json", "state.db"} {
		if aside, _ := filepath.Glob(filepath.Join(lab.DataDir(client), "left-*", f)); len(aside) != 1 {
			t.Errorf("%s's data dir has %v; want its old %s moved aside into one left-* dir", client, aside, f)
		}
	}
	// A state cache left behind would program the old cluster's policy
	// and this host's released blocks at the next `calico up`.
	if _, err := os.Stat(filepath.Join(lab.DataDir(client), "state.db")); !os.IsNotExist(err) {
		t.Errorf("%s's data dir still has state.db after it left (%v)", client, err)
	}
	rest := slices.DeleteFunc(slices.Clone(hosts), func(h string) bool { return h == client })
	waitFor(t, 30*time.Second, "the others to see "+client+" gone", func() (bool, string) { return settled(lab, rest, []string{client}) })
	for _, a := range w.Addresses {
		if out := lab.MustCalico("host1", "ipam", "show", "--ip", a); !strings.Contains(out, "is not allocated") {
			t.Errorf("after %s left, ipam show --ip %s says %q", client, a, out)
		}
	}
	if out, errs, err := lab.Calico("host1", "ipam", "check"); err != nil {
		t.Errorf("ipam check after %s left: %v\n%s%s", client, err, out, errs)
	}
	var blocks []struct {
		CIDR     string `json:"cidr"`
		Affinity string `json:"affinity"`
	}
	if err := json.Unmarshal([]byte(lab.MustCalico("host1", "ipam", "show", "-o", "json")), &blocks); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if strings.HasSuffix(b.Affinity, client) {
			t.Errorf("block %s still has affinity %s after %s left", b.CIDR, b.Affinity, client)
		}
	}

	// A voter leaves: the other client takes its seat first.
	voter := withRole(rs, "voter")[len(withRole(rs, "voter"))-1]
	if voter == "host1" {
		t.Fatalf("roles %v: want a voter other than host1", rs)
	}
	start = time.Now()
	if out, errs, err := lab.CalicoWithin(120*time.Second, voter, "leave"); err != nil {
		t.Fatalf("calico leave on voter %s: %v\n%s%s", voter, err, out, errs)
	}
	t.Logf("voter %s left in %s", voter, time.Since(start).Round(time.Millisecond))
	exited(t, lab, voter)
	rest = slices.DeleteFunc(rest, func(h string) bool { return h == voter })
	waitFor(t, 30*time.Second, "three voters without "+voter, func() (bool, string) { return settled(lab, rest, []string{client, voter}) })
	t.Logf("voters now %v", withRole(roles(t, lab, "host1"), "voter"))
	writeEverywhere(t, lab, rest, "after-", time.Now(), 10*time.Second)
}

// exited waits for host's node process to exit.
func exited(t *testing.T, lab *Lab, host string) {
	t.Helper()
	pid, err := lab.pid(host)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, host+"'s node to exit", func() (bool, string) {
		return dead(pid), fmt.Sprintf("pid %d runs", pid)
	})
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

const countPolicy = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: count-probe}
spec:
  order: 10
  selector: app == "probe"
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [8080]}
  egress:
  - action: Allow
`

// TestMetrics runs three lab nodes with --metrics-addr and a real
// Prometheus in host1's namespace that scrapes them, and asks it, in
// PromQL, what an operator would: how many hosts, how many endpoints
// each has, whether BGP is established, whether a policy's rule counts
// the traffic it allows, and whether a node is ready (503 while etcd has
// no quorum, 200 again after). Each node's exposition passes promtool.
// With CALICO_PLOTS_DIR set it also draws the run (README, Monitoring).
func TestMetrics(t *testing.T) {
	needTools(t, "prometheus", "promtool")
	lab := NewLab(t, 3, 1)
	metrics := []string{"--metrics-addr", ":9091"}
	lab.Start("host1", append([]string{"--pool", "10.65.0.0/16", "--pool", "fd00:65::/48"}, metrics...)...)
	tok, seed := lab.Token("host1"), lab.Addr("host1")
	for _, h := range []string{"host2", "host3"} {
		lab.Start(h, append([]string{"--join", seed, "--token", tok}, metrics...)...)
	}
	var targets []string
	for _, h := range []string{"host1", "host2", "host3"} {
		targets = append(targets, lab.Addr(h)+":9091")
	}
	began := time.Now()
	prom := StartPrometheus(t, "host1", targets)
	var events []plotEvent
	plots := os.Getenv("CALICO_PLOTS_DIR")
	mark := func(what string) {
		if plots != "" {
			time.Sleep(15 * time.Second) // a stretch of each phase on the plots
		}
		events = append(events, plotEvent{time.Now(), what})
	}
	inst := func(h string) string { return `instance="` + lab.Addr(h) + `:9091"` }

	prom.Eventually(t, 60*time.Second, `count(up == 1)`, "targets up", func(v float64) bool { return v == 3 })
	prom.Eventually(t, 60*time.Second, `min(felix_cluster_num_hosts)`, "hosts every node sees", func(v float64) bool { return v == 3 })
	// Each node peers with the two others over IPv4 and IPv6.
	prom.Eventually(t, 90*time.Second, `min(calico_bgp_sessions{state="established"})`, "BGP sessions established on each node", func(v float64) bool { return v == 4 })

	t.Run("promtool", func(t *testing.T) {
		for _, h := range []string{"host1", "host2", "host3"} {
			code, body, err := get(nsHTTP(t, h), "http://"+lab.Addr(h)+":9091/metrics")
			if err != nil || code != 200 {
				t.Fatalf("%s's metrics: %d %v", h, code, err)
			}
			cmd := exec.Command("promtool", "check", "metrics")
			cmd.Stdin = strings.NewReader(body)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics on %s's exposition: %v\n%s", h, err, out)
			}
		}
	})

	mark("workloads added")
	a := lab.AddWorkload("host2", "mt-a", "--label", "app=probe")
	b := lab.AddWorkload("host2", "mt-b", "--label", "app=probe")
	c := lab.AddWorkload("host3", "mt-c", "--label", "app=probe")
	prom.Eventually(t, 30*time.Second, `felix_active_local_endpoints{`+inst("host2")+`}`, "host2's endpoints", func(v float64) bool { return v == 2 })
	prom.Eventually(t, 30*time.Second, `felix_active_local_endpoints{`+inst("host3")+`}`, "host3's endpoints", func(v float64) bool { return v == 1 })
	prom.Eventually(t, 30*time.Second, `max(felix_cluster_num_workload_endpoints)`, "endpoints in the cluster", func(v float64) bool { return v == 3 })

	stop := trafficLoop(a, b, c)
	defer stop()
	mark("policy applied")
	f := filepath.Join(t.TempDir(), "count.yaml")
	os.WriteFile(f, []byte(countPolicy), 0o644)
	lab.MustCalico("host1", "apply", "-f", f)
	rule := `sum(calico_policy_rule_packets_total{` + inst("host3") + `,policy=~".*count-probe",direction="ingress",rule="0",action="Allow"})`
	first := prom.Eventually(t, 30*time.Second, rule, "the policy's rule counting flows into mt-c", func(v float64) bool { return v > 0 })
	prom.Eventually(t, 30*time.Second, rule, "the counter rising with more traffic", func(v float64) bool { return v > first })

	t.Run("readiness", func(t *testing.T) { readinessWithoutQuorum(t, lab, prom, mark, metrics) })
	if plots != "" {
		time.Sleep(15 * time.Second)
	}
	stop()
	if plots != "" {
		drawRun(t, prom, plots, began, events)
	}
}

// readinessWithoutQuorum kills two of the three voters: host1's
// /readiness answers 503 with the reason, calico status says the same,
// and calico_ready drops to 0; with them back, 200 again.
func readinessWithoutQuorum(t *testing.T, lab *Lab, prom *Prometheus, mark func(string), metrics []string) {
	h1 := nsHTTP(t, "host1")
	ready := func() (int, string) {
		code, body, err := get(h1, "http://127.0.0.1:9099/readiness")
		if err != nil {
			return 0, err.Error()
		}
		return code, body
	}
	if code, body := ready(); code != 200 {
		t.Fatalf("host1 /readiness before: %d %q", code, body)
	}
	if code, body, _ := get(h1, "http://127.0.0.1:9099/liveness"); code != 200 {
		t.Fatalf("host1 /liveness: %d %q", code, body)
	}
	mark("host2 and host3 killed")
	lab.Kill("host2")
	lab.Kill("host3")
	var body string
	eventually(t, 60*time.Second, "host1's /readiness to answer 503 without quorum", func() bool {
		var code int
		code, body = ready()
		return code == 503
	})
	if !strings.Contains(body, "not ready: the datastore is not in sync") {
		t.Errorf("503 body %q does not say why", body)
	}
	if out := lab.MustCalico("host1", "status"); !strings.Contains(out, "NOT READY (the datastore is not in sync") {
		t.Errorf("calico status does not show the verdict:\n%s", out)
	}
	// The CNI plugin's STATUS says so too: 51, the node runs but cannot
	// add containers now.
	e := newCNIEnv(t, lab)
	status := func() *types.Error {
		var cerr *types.Error
		e.in(t, "host1", func() error {
			_, cerr = e.run(pluginRun{Command: "STATUS", Stdin: pluginConf("statusnet", "1.1.0", e.calicoConf("host1", nil))})
			return nil
		})
		return cerr
	}
	if cerr := status(); cerr == nil || cerr.Code != 51 || !strings.Contains(cerr.Msg, "cannot reach its datastore") {
		t.Errorf("CNI STATUS without quorum: %+v; want code 51 saying the datastore cannot be reached", cerr)
	}
	if code, body, _ := get(h1, "http://127.0.0.1:9099/liveness"); code != 200 {
		t.Errorf("host1 /liveness without quorum: %d %q (the node is alive)", code, body)
	}
	prom.Eventually(t, 30*time.Second, `calico_ready{instance="`+lab.Addr("host1")+`:9091"}`, "host1 not ready", func(v float64) bool { return v == 0 })
	mark("host2 and host3 back")
	lab.Start("host2", metrics...)
	lab.Start("host3", metrics...)
	eventually(t, 90*time.Second, "host1's /readiness to answer 200 again", func() bool {
		code, _ := ready()
		return code == 200
	})
	if cerr := status(); cerr != nil {
		t.Errorf("CNI STATUS with quorum back: %+v", cerr)
	}
	prom.Eventually(t, 60*time.Second, `min(calico_ready)`, "every node ready", func(v float64) bool { return v == 1 })
	prom.Eventually(t, 90*time.Second, `min(calico_bgp_sessions{state="established"})`, "BGP back", func(v float64) bool { return v == 4 })
}

// trafficLoop connects a -> c and b -> c every 200 ms until stopped (at
// most five minutes): flows for the rule counters.
func trafficLoop(a, b, c Workload) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Go(func() {
		end := time.Now().Add(5 * time.Minute)
		for time.Now().Before(end) {
			connects(a, c.v4())
			connects(b, c.v6())
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}

// TestCleanStop: a SIGTERM to each node of a three-host cluster logs no
// error and no stack trace, in either log format.
func TestCleanStop(t *testing.T) {
	lab := NewLab(t, 3, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--log-format", "json")
	tok, seed := lab.Token("host1"), lab.Addr("host1")
	lab.Start("host2", "--join", seed, "--token", tok, "--log-format", "json")
	lab.Start("host3", "--join", seed, "--token", tok)
	eventually(t, 60*time.Second, "three voters", func() bool {
		st, err := lab.Status("host1")
		return err == nil && st.Datastore.Members == 3
	})
	before := map[string]int{}
	for _, h := range []string{"host1", "host2", "host3"} {
		before[h] = len(lab.Log(h))
	}
	for _, h := range []string{"host3", "host2", "host1"} {
		lab.Stop(h)
		stop := lab.Log(h)[before[h]:]
		for _, bad := range []string{"level=ERROR", `"level":"ERROR"`, `"level":"error"`, "stacktrace", "goroutine "} {
			if strings.Contains(stop, bad) {
				t.Errorf("%s's stop logged %q:\n%s", h, bad, stop)
			}
		}
		if !strings.Contains(stop, "stopping; the dataplane stays as it is") {
			t.Errorf("%s's stop:\n%s", h, stop)
		}
	}
}

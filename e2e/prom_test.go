package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"calico/internal/testutil"
)

// nsHTTP is an HTTP client whose connections start in host's network
// namespace: the nodes' metrics and health ports and the test's
// Prometheus listen only inside the lab.
func nsHTTP(t *testing.T, host string) *http.Client {
	ns := testutil.OpenNetNS(t, hostNS(host))
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// get fetches a URL and returns the status code and body.
func get(c *http.Client, u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// needTools skips a test (saying so on stdout, which make test shows)
// when a tool it needs is missing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Printf("SKIP: %s: needs %s (Debian: apt-get install prometheus; .ci/run installs it)\n", t.Name(), tool)
			t.Skipf("needs %s", tool)
		}
	}
}

// Prometheus is a real Prometheus the test runs in a lab host's network
// namespace, on loopback, with its own data dir; it is stopped when the
// test ends, pass or fail.
type Prometheus struct {
	client *http.Client
	base   string
}

// StartPrometheus runs Prometheus in host's namespace, scraping targets
// (HOST:PORT) every second.
func StartPrometheus(t *testing.T, host string, targets []string) *Prometheus {
	t.Helper()
	return StartPrometheusEvery(t, host, targets, "1s")
}

// StartPrometheusEvery is StartPrometheus with another scrape interval.
func StartPrometheusEvery(t *testing.T, host string, targets []string, every string) *Prometheus {
	t.Helper()
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf("global: {scrape_interval: %s, evaluation_interval: %s}\nscrape_configs:\n- job_name: calico\n  static_configs:\n  - targets: [%s]\n", every, every, strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+hostNS(host), "prometheus",
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:9090", "--storage.tsdb.retention.time=1d")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus's log:\n%s", tail(string(b), 30))
		}
	})
	p := &Prometheus{client: nsHTTP(t, host), base: "http://127.0.0.1:9090"}
	eventually(t, 60*time.Second, "prometheus to be ready", func() bool {
		code, _, err := get(p.client, p.base+"/-/ready")
		return err == nil && code == 200
	})
	return p
}

// Sample is one series of a query's result: its labels and value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query.
func (p *Prometheus) Query(q string) ([]Sample, error) {
	code, body, err := get(p.client, p.base+"/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("query %q: %d %s %v %s", q, code, r.Error, err, body)
	}
	var out []Sample
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		out = append(out, Sample{Labels: s.Metric, Value: v})
	}
	return out, nil
}

// Value runs a query that has one result and returns its value (false
// when it has none or several).
func (p *Prometheus) Value(t *testing.T, q string) (float64, bool) {
	ss, err := p.Query(q)
	if err != nil {
		t.Logf("%v", err)
		return 0, false
	}
	if len(ss) != 1 {
		return 0, false
	}
	return ss[0].Value, true
}

// Eventually waits until a query's single value satisfies cond.
func (p *Prometheus) Eventually(t *testing.T, within time.Duration, q string, what string, cond func(float64) bool) float64 {
	t.Helper()
	var last float64
	var ok bool
	deadline := time.Now().Add(within)
	for {
		if last, ok = p.Value(t, q); ok && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus: %s (%s) is %v (a result: %v) after %s", q, what, last, ok, within)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

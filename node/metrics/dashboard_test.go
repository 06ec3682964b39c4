package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dashboardExprs are the PromQL expressions of docs/monitoring's Grafana
// dashboard.
func dashboardExprs(t *testing.T) []string {
	b, err := os.ReadFile("../../docs/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\b(?:felix|calico|process|go)_[a-z0-9_]+`)

// TestDashboardMetrics: the dashboard is built only from metrics the
// node exports.
func TestDashboardMetrics(t *testing.T) {
	m := New("v-test", sample)
	m.ObservePass(Pass{Took: time.Millisecond})
	m.ObserveRequest("GET /v1/status", 200, "", time.Millisecond)
	m.ObserveEtcd("x", nil, time.Millisecond)
	m.PluginCall("cni", "x", "ok")
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("%d expressions", len(exprs))
	}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			base := name
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suf)
			}
			if !have[name] && !have[base] {
				t.Errorf("the dashboard uses %s, which the node does not export (%s)", name, e)
			}
		}
	}
}

// TestDashboardPromQL: every expression of the dashboard parses, as
// promtool checks a recording rule.
func TestDashboardPromQL(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		fmt.Println("SKIP: TestDashboardPromQL: needs promtool (Debian: apt-get install prometheus; .ci/run installs it)")
		t.Skip("needs promtool")
	}
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, e := range dashboardExprs(t) {
		e = strings.ReplaceAll(e, "$instance", ".*")
		fmt.Fprintf(&rules, "  - record: dashboard:expr%d\n    expr: %q\n", i, e)
	}
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

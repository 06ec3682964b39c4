package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// plotEvent is something the test did, marked on the plots.
type plotEvent struct {
	At   time.Time
	What string
}

// panel is one plot: a PromQL range query, one line per series named by
// the label legend.
type panel struct {
	file, title, ylabel, query, legend string
}

var panels = []panel{
	{"endpoints", "Local endpoints per node (felix_active_local_endpoints)", "endpoints", `felix_active_local_endpoints`, "instance"},
	{"rule-packets", "Packets counted by policy rules per node, per second (rate over 30 s)", "packets/s", `sum by (instance) (rate(calico_policy_rule_packets_total[30s]))`, "instance"},
	{"bgp", "Established BGP sessions per node (calico_bgp_sessions)", "sessions", `calico_bgp_sessions{state="established"}`, "instance"},
	{"ready", "Ready nodes (calico_ready) and alive gossip members seen by host1", "count", `label_replace(sum(calico_ready), "instance", "ready nodes", "", "") or label_replace(calico_cluster_members{state="alive",instance=~"172.31.1.11:.*"}, "instance", "alive members (host1)", "", "")`, "instance"},
	{"apply", "Dataplane programming time per node, median (felix_int_dataplane_apply_time_seconds)", "ms", `1000 * felix_int_dataplane_apply_time_seconds{quantile="0.5"}`, "instance"},
	{"nft-rules", "Rules in table inet calico per node (calico_nft_table_objects)", "rules", `calico_nft_table_objects{kind="rules"}`, "instance"},
}

// drawRun queries Prometheus over the whole run and draws each panel
// with gnuplot into dir (PNG), with the data beside it (TSV).
func drawRun(t *testing.T, prom *Prometheus, dir string, began time.Time, events []plotEvent) {
	if _, err := exec.LookPath("gnuplot"); err != nil {
		fmt.Printf("SKIP: %s plots: needs gnuplot (apt-get install gnuplot-nox)\n", t.Name())
		return
	}
	time.Sleep(3 * time.Second) // the last scrapes
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	for _, p := range panels {
		series, err := prom.Range(p.query, began, end)
		if err != nil {
			t.Errorf("%s: %v", p.file, err)
			continue
		}
		if err := plot(dir, p, series, began, events); err != nil {
			t.Errorf("plotting %s: %v", p.file, err)
		}
	}
	t.Logf("plots of the run written to %s", dir)
}

// rangeSeries is one series of a range query: its name and points.
type rangeSeries struct {
	Name   string
	Points [][2]float64 // seconds since the start, value
}

// Range runs a PromQL range query with a 1 s step.
func (p *Prometheus) Range(q string, from, to time.Time) ([]rangeSeries, error) {
	u := fmt.Sprintf("%s/api/v1/query_range?query=%s&start=%d&end=%d&step=1", p.base, url.QueryEscape(q), from.Unix(), to.Unix())
	_, body, err := get(p.client, u)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("query_range %q: %v %s", q, err, body)
	}
	var out []rangeSeries
	for _, s := range r.Data.Result {
		rs := rangeSeries{Name: hostOf(s.Metric["instance"])}
		for _, v := range s.Values {
			ts, _ := v[0].(float64)
			val, _ := strconv.ParseFloat(fmt.Sprint(v[1]), 64)
			rs.Points = append(rs.Points, [2]float64{ts - float64(from.Unix()), val})
		}
		out = append(out, rs)
	}
	slices.SortFunc(out, func(a, b rangeSeries) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// hostOf names a lab instance by its host (172.31.1.12:9091 is host2).
func hostOf(instance string) string {
	if instance == "" {
		return "all nodes"
	}
	if ip, _, ok := strings.Cut(instance, ":"); ok && strings.HasPrefix(ip, "172.31.") {
		parts := strings.Split(ip, ".")
		if n, err := strconv.Atoi(parts[3]); err == nil && n > 10 {
			return fmt.Sprintf("host%d", n-10)
		}
	}
	return instance
}

func plot(dir string, p panel, series []rangeSeries, began time.Time, events []plotEvent) error {
	data := filepath.Join(dir, p.file+".tsv")
	var b strings.Builder
	for i, s := range series {
		if i > 0 {
			b.WriteString("\n\n")
		}
		fmt.Fprintf(&b, "# %s\n", s.Name)
		for j, pt := range s.Points {
			if j > 0 && pt[0]-s.Points[j-1][0] > 1.5 {
				b.WriteString("\n") // a gap: no line across it
			}
			fmt.Fprintf(&b, "%.0f\t%g\n", pt[0], pt[1])
		}
	}
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		return err
	}
	var g strings.Builder
	fmt.Fprintf(&g, "set terminal pngcairo size 900,300 font 'sans,9'\nset output '%s'\n", p.file+".png")
	fmt.Fprintf(&g, "set title %q\nset xlabel 'seconds into the run'\nset ylabel %q\nset key outside right\nset grid\nset yrange [0:*]\nset termoption noenhanced\n", p.title, p.ylabel)
	for i, e := range events {
		x := e.At.Sub(began).Seconds()
		fmt.Fprintf(&g, "set arrow from %.0f, graph 0 to %.0f, graph 1 nohead dt 2 lc rgb 'gray40'\n", x, x)
		fmt.Fprintf(&g, "set label %d %q at %.0f, graph %.2f offset 0.5,0 font 'sans,8' tc rgb 'gray30'\n", i+1, e.What, x, 0.95-0.08*float64(i%4))
	}
	var plots []string
	for i, s := range series {
		plots = append(plots, fmt.Sprintf("'%s' index %d using 1:2 with steps lw 2 title %q", p.file+".tsv", i, s.Name))
	}
	if len(plots) == 0 {
		plots = []string{"NaN notitle"}
	}
	g.WriteString("plot " + strings.Join(plots, ", ") + "\n")
	script := filepath.Join(dir, p.file+".gp")
	if err := os.WriteFile(script, []byte(g.String()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("gnuplot", p.file+".gp")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("gnuplot: %v: %s", err, out)
	}
	return nil
}

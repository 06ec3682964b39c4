package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSingleHost is the first issue's scenario as a user runs it: one
// host, workloads in two profiles, TCP both ways over IPv4 and IPv6, the
// same after the node restarts, and nothing left after `workload rm`.
func TestSingleHost(t *testing.T) {
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")

	a1 := lab.AddWorkload("host1", "cw-a1", "--profile", "a")
	a2 := lab.AddWorkload("host1", "cw-a2", "--profile", "a")
	b1 := lab.AddWorkload("host1", "cw-b1", "--profile", "b")
	for _, w := range []Workload{a1, a2, b1} {
		if w.v4() == "" || w.v6() == "" || !strings.HasPrefix(w.v4(), "10.65.") || !strings.HasPrefix(w.v6(), "fd00:65:") {
			t.Fatalf("workload %s got addresses %v; want one from each pool", w.Name, w.Addresses)
		}
	}
	matrix := func() []Expect {
		var cells []Expect
		for _, fam := range []func(Workload) string{Workload.v4, Workload.v6} {
			cells = append(cells,
				Expect{a1, fam(a2), true}, Expect{a2, fam(a1), true},
				Expect{b1, fam(a1), false}, Expect{b1, fam(a2), false},
				Expect{a1, fam(b1), false}, Expect{a2, fam(b1), false})
		}
		return cells
	}
	CheckMatrix(t, matrix(), 10*time.Second)
	if out, err := exec.Command("ip", "netns", "exec", "cw-a1", "ping", "-c", "1", "-W", "2", a2.v4()).CombinedOutput(); err != nil {
		t.Errorf("ping from cw-a1 to cw-a2: %v\n%s", err, out)
	}
	if err := exec.Command("ip", "netns", "exec", "cw-b1", "ping", "-c", "1", "-W", "1", a1.v4()).Run(); err == nil {
		t.Errorf("ping from cw-b1 to cw-a1 got through")
	}

	t.Run("drift", func(t *testing.T) {
		// A workload route deleted by hand comes back.
		if out, err := lab.Exec("host1", "ip", "route", "del", a1.v4()+"/32"); err != nil {
			t.Fatalf("deleting the route: %v\n%s", err, out)
		}
		eventually(t, 15*time.Second, "the deleted route to come back", func() bool {
			out, _ := lab.Exec("host1", "ip", "route", "show", a1.v4()+"/32")
			return strings.Contains(out, a1.Interface)
		})
	})

	t.Run("restart", func(t *testing.T) {
		lab.Stop("host1")
		// The dataplane stays while the node is down.
		CheckMatrix(t, []Expect{{a1, a2.v4(), true}, {b1, a1.v4(), false}}, 5*time.Second)
		lab.Start("host1")
		CheckMatrix(t, matrix(), 10*time.Second)
		a3 := lab.AddWorkload("host1", "cw-a3", "--profile", "a")
		CheckMatrix(t, []Expect{{a3, a1.v4(), true}, {a1, a3.v6(), true}, {b1, a3.v4(), false}}, 10*time.Second)
	})

	t.Run("rm", func(t *testing.T) {
		lab.MustCalico("host1", "workload", "rm", "cw-a2")
		out := lab.MustCalico("host1", "ipam", "show", "--ip", a2.v4())
		if !strings.Contains(out, "not allocated") {
			t.Errorf("after workload rm, ipam show --ip %s says %q", a2.v4(), out)
		}
		if out, _ := lab.Exec("host1", "ip", "link", "show", a2.Interface); strings.Contains(out, a2.Interface+":") {
			t.Errorf("interface %s still exists after workload rm", a2.Interface)
		}
		if _, err := os.Stat(a2.NetNS); !os.IsNotExist(err) {
			t.Errorf("network namespace %s still exists after workload rm (%v)", a2.NetNS, err)
		}
		if out := lab.MustCalico("host1", "ipam", "check"); !strings.Contains(out, "0 allocated but used by no workload") {
			t.Errorf("ipam check after rm:\n%s", out)
		}
	})
}

// TestBadInputChangesNothing feeds the CLI the mistakes of the first issue
// and checks each gets a one-line error naming what is wrong and a
// non-zero exit, and that nothing changed.
func TestBadInputChangesNothing(t *testing.T) {
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16")
	lab.AddWorkload("host1", "cw-x")
	before := lab.MustCalico("host1", "get", "ippools", "-o", "yaml") + lab.MustCalico("host1", "workload", "list")

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"pool", "add", "10.65.128.0/17"}, `overlaps IPPool`},
		{[]string{"pool", "add", "10.99.0.0/33"}, `is not a CIDR`},
		{[]string{"workload", "add", "cw-x", "--label", "role=other"}, `already exists`},
		{[]string{"workload", "add", "cw-y", "--ip", "10.200.0.1"}, `address 10.200.0.1 is not in any IP pool`},
		{[]string{"workload", "add", "Bad_Name"}, `workload name "Bad_Name"`},
		{[]string{"get", "pods"}, `unknown resource kind "pods"`},
		{[]string{"profile", "rm", "default"}, `in use by workload default/cw-x`},
		{[]string{"pool", "rm", "10.65.0.0/16"}, `has 1 addresses in use`},
	}
	for _, b := range bad {
		out, errs, err := lab.Calico("host1", b.args...)
		if err == nil || !strings.Contains(errs, b.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("calico %s: exit %v, stdout %q, stderr %q; want a one-line error containing %q", strings.Join(b.args, " "), err, out, errs, b.want)
		}
	}
	for _, doc := range []struct{ yaml, want string }{
		{"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.70.0.0/16, ipipMod: Never}\n", `unknown field "spec.ipipMod"`},
		{"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: [\n", `document 1`},
		{"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: good}\nspec: {cidr: 10.71.0.0/16}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: bad}\nspec: {cidr: 10.72.0.0/40}\n", `"10.72.0.0/40" is not a CIDR`},
	} {
		f := t.TempDir() + "/in.yaml"
		os.WriteFile(f, []byte(doc.yaml), 0o644)
		_, errs, err := lab.Calico("host1", "apply", "-f", f)
		if err == nil || !strings.Contains(errs, doc.want) {
			t.Errorf("apply of %q: %v %q; want an error containing %q", doc.yaml, err, errs, doc.want)
		}
	}
	after := lab.MustCalico("host1", "get", "ippools", "-o", "yaml") + lab.MustCalico("host1", "workload", "list")
	if before != after {
		t.Errorf("bad input changed the datastore:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/cluster/token"
	"calico/store"
	"calico/store/etcdv3"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func joinConfig(t *testing.T, name string, seed *Cluster, token string) Config {
	cfg := testConfig(t, t.TempDir())
	cfg.Name = name
	cfg.Join = fmt.Sprintf("127.0.0.1:%d", seed.cfg.JoinPort)
	cfg.Token = token
	return cfg
}

func roles(t *testing.T, c *Cluster) map[string]string {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, m := range list.Members {
		out[m.Name] = roleOf(list.Members, m.Name)
	}
	return out
}

func TestJoin(t *testing.T) {
	n1, err := Start(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	tok, err := token.Load(n1.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}

	// Refusals leave the joiner's data dir as it was.
	other := token.Token{CAHash: strings.Repeat("ab", 32), Secret: tok.Secret}
	wrong := token.Token{CAHash: tok.CAHash, Secret: strings.Repeat("0", 32)}
	for _, tc := range []struct {
		name, token, join, want string
	}{
		{"wrong secret", wrong.String(), "", "refused the token's secret: wrong token"},
		{"another cluster's CA", other.String(), "", "its CA does not match the token's hash"},
		{"unreachable seed", tok.String(), fmt.Sprintf("127.0.0.1:%d", freePort(t)), "cannot reach its join API"},
	} {
		cfg := joinConfig(t, "nx", n1, tc.token)
		if tc.join != "" {
			cfg.Join = tc.join
		}
		_, err := Start(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: joining = %v; want %q", tc.name, err, tc.want)
		}
		if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 0 {
			t.Errorf("%s: a refused join left %v in the data dir", tc.name, entries)
		}
	}

	// The second host waits as a learner: two voters would tolerate no
	// failure at all. It joins through a seed address that answers only
	// a second after the join began (a seed still starting): the join
	// tries again.
	late := lateForwarder(t, fmt.Sprintf("127.0.0.1:%d", n1.cfg.JoinPort), time.Second)
	cfg2 := joinConfig(t, "n2", n1, tok.String())
	cfg2.Join = late
	n2, err := Start(t.Context(), cfg2)
	if err != nil {
		t.Fatalf("joining n2: %v", err)
	}
	defer n2.Close()
	if r := roles(t, n1); r["n1"] != "voter" || r["n2"] != "learner" {
		t.Errorf("roles with two hosts = %v; want n1 voter, n2 learner", r)
	}
	// The third makes three voters; any member is a seed.
	n3, err := Start(t.Context(), joinConfig(t, "n3", n2, tok.String()))
	if err != nil {
		t.Fatalf("joining n3 through n2: %v", err)
	}
	defer n3.Close()
	waitFor(t, 30*time.Second, "three voters", func() bool {
		r := roles(t, n1)
		return r["n1"] == "voter" && r["n2"] == "voter" && r["n3"] == "voter"
	})
	// The fourth is a client, and everyone sees everyone alive.
	n4, err := Start(t.Context(), joinConfig(t, "n4", n1, tok.String()))
	if err != nil {
		t.Fatalf("joining n4: %v", err)
	}
	defer n4.Close()
	if n4.Role() != "client" || n4.embedded() != nil {
		t.Errorf("n4's role = %s; want client without an etcd member", n4.Role())
	}
	for _, c := range []*Cluster{n1, n2, n3, n4} {
		waitFor(t, 20*time.Second, c.id.Name+" seeing four live nodes", func() bool {
			ns, err := c.Members(t.Context())
			alive := 0
			for _, n := range ns {
				if n.Gossip == "alive" {
					alive++
				}
			}
			return err == nil && alive == 4
		})
	}
	// A client writes through the voters.
	p := store.KindProfile.New()
	p.Meta().Name = "from-n4"
	if err := etcdv3.New(n4.Client()).Create(t.Context(), p); err != nil {
		t.Errorf("writing from the client: %v", err)
	}
	if _, err := etcdv3.GetOf[*store.Profile](t.Context(), etcdv3.New(n1.Client()), "", "from-n4"); err != nil {
		t.Errorf("reading n4's write on n1: %v", err)
	}
	ns, _ := n1.Members(t.Context())
	var names []string
	for _, n := range ns {
		names = append(names, n.Name+":"+n.Role)
	}
	slices.Sort(names)
	if want := []string{"n1:voter", "n2:voter", "n3:voter", "n4:client"}; !slices.Equal(names, want) {
		t.Errorf("nodes = %v; want %v", names, want)
	}
}

func TestInitialClusterListsUnstartedMembers(t *testing.T) {
	ms := []*etcdserverpb.Member{
		{Name: "n1", PeerURLs: []string{"https://10.0.0.1:2380"}},
		{PeerURLs: []string{"https://10.0.0.2:2380"}, IsLearner: true}, // added, not started
		{PeerURLs: []string{"https://10.0.0.3:2380"}, IsLearner: true}, // this one
	}
	got := initialCluster(ms, "n3", "https://10.0.0.3:2380")
	if want := "n1=https://10.0.0.1:2380,=https://10.0.0.2:2380,n3=https://10.0.0.3:2380"; got != want {
		t.Errorf("initial cluster = %s; want %s", got, want)
	}
}

// Three hosts joining at the same moment: the seats are taken one at a
// time and the cluster ends with three voters and a client.
func TestConcurrentJoins(t *testing.T) {
	n1, err := Start(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	tok, _ := token.Load(n1.cfg.DataDir)
	cfgs := []Config{joinConfig(t, "n2", n1, tok.String()), joinConfig(t, "n3", n1, tok.String()), joinConfig(t, "n4", n1, tok.String())}
	cs := make([]*Cluster, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() { cs[i], errs[i] = Start(t.Context(), cfg) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("n%d joining: %v", i+2, err)
		}
		defer cs[i].Close()
	}
	waitFor(t, 60*time.Second, "three voters and a client", func() bool {
		r := roles(t, n1)
		voters, learners := 0, 0
		for _, role := range r {
			switch role {
			case "voter":
				voters++
			case "learner":
				learners++
			}
		}
		return voters == 3 && learners == 0 && len(r) == 3
	})
}

// TestSeatTakeFailsJoinGoesOn: a joiner whose etcd member cannot start in
// a free seat gives the seat back and joins as a client, then takes a
// seat once its member can start (here its peer port is taken at first).
func TestSeatTakeFailsJoinGoesOn(t *testing.T) {
	n1, err := Start(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	tok, _ := token.Load(n1.cfg.DataDir)
	cfg := joinConfig(t, "n2", n1, tok.String())
	taken, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.EtcdPeerPort))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := Start(t.Context(), cfg)
	if err != nil {
		taken.Close()
		t.Fatalf("joining with a member that cannot start: %v; want a client", err)
	}
	defer n2.Close()
	if r := roles(t, n1); r["n2"] != "" || len(r) != 1 {
		t.Errorf("members after the failed seat-take: %v; want n1 alone (the seat given back)", r)
	}
	if n2.Role() != "client" {
		t.Errorf("n2 is a %s; want a client", n2.Role())
	}
	taken.Close()
	// A lone learner beside a lone voter waits for a second one to be
	// promoted with it (members.go), so n2 stays a learner here.
	waitFor(t, 60*time.Second, "n2 a member after all", func() bool { return roles(t, n1)["n2"] == "learner" && n2.embedded() != nil })
}

// lateForwarder listens on a free port of 127.0.0.1 after delay (refusing
// connections until then) and forwards what it accepts to target; it
// returns its address.
func lateForwarder(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		select {
		case <-time.After(delay):
		case <-done:
			return
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("the late forwarder: %v", err)
			return
		}
		go func() { <-done; ln.Close() }()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return addr
}

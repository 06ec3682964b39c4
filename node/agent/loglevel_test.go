package agent_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/nft"
	"calico/node/agent"
	"calico/node/agent/agenttest"
	"calico/node/route"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// TestAgentLogLevel: FelixConfiguration logSeverityScreen sets the
// node's log level, node.<name> over default, and without either the
// level is what the node started with.
func TestAgentLogLevel(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelInfo)
	a, err := agent.New(agent.Config{
		Name: agenttest.Node, DataDir: t.TempDir(), LogLevel: lv,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: lv})),
	}, nft.NewFake(), route.NewFake())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	a.Connect(agent.FromStore(s, ipam.New(cli)))

	felix := func(name, sev string) *store.FelixConfiguration {
		f := store.KindFelixConfiguration.New().(*store.FelixConfiguration)
		f.Metadata.Name, f.Spec.LogSeverityScreen = name, sev
		return f
	}
	apply := func(r store.Resource) {
		t.Helper()
		if _, err := s.Apply(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		agenttest.WaitApplied(t, a, r)
	}
	remove := func(name string) {
		t.Helper()
		f, err := etcdv3.GetOf[*store.FelixConfiguration](t.Context(), s, "", name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Delete(t.Context(), store.IDOf(f), ""); err != nil {
			t.Fatal(err)
		}
		resp, err := cli.Get(t.Context(), "/")
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := a.WaitApplied(wctx, resp.Header.Revision); err != nil {
			t.Fatalf("the agent did not catch up with deleting %s: %v", name, err)
		}
	}
	want := func(level slog.Level) {
		t.Helper()
		if got := lv.Level(); got != level {
			t.Errorf("log level = %v; want %v", got, level)
		}
	}
	apply(felix("default", "Debug"))
	want(slog.LevelDebug)
	apply(felix("node."+agenttest.Node, "Warning"))
	want(slog.LevelWarn)
	apply(felix("node.other", "Error"))
	want(slog.LevelWarn)
	remove("node." + agenttest.Node)
	want(slog.LevelDebug)
	remove("default")
	want(slog.LevelInfo)
	apply(felix("default", "Fatal"))
	if lv.Level() <= slog.LevelError {
		t.Errorf("log level for Fatal = %v; want above Error", lv.Level())
	}
}

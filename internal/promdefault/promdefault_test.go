package promdefault_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"calico/internal/promdefault"
	// Registers its collectors on the default registry in its init.
	_ "go.etcd.io/etcd/server/v3/storage/mvcc"
)

// TestQueuedUntilStarted checks that this package's init ran before
// etcd's (its registrations were queued, not made), that they are all
// registered by the first call after Started, and that Register is exact
// from then on.
func TestQueuedUntilStarted(t *testing.T) {
	switch n := promdefault.Queued(); {
	case n < 0:
		t.Fatal("the default registry is not the lazy one")
	case n == 0:
		t.Fatal("nothing queued: etcd's inits ran before this package's")
	}
	promdefault.Started()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	// A counter of mvcc's (registered at init) and one of the Go collector
	// (registered by prometheus's own init, before the swap).
	for _, want := range []string{"etcd_mvcc_range_total", "go_goroutines"} {
		if !names[want] {
			t.Errorf("%s not gathered (%d families)", want, len(families))
		}
	}

	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "promdefault_test_total", Help: "test"})
	if err := prometheus.Register(c); err != nil {
		t.Fatal(err)
	}
	var are prometheus.AlreadyRegisteredError
	if err := prometheus.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "promdefault_test_total", Help: "test"})); !errors.As(err, &are) {
		t.Fatalf("second Register: %v, want AlreadyRegisteredError", err)
	}
	if !prometheus.Unregister(c) {
		t.Fatal("Unregister: not registered")
	}
}

package cluster

import (
	"testing"
	"time"
)

func TestSkewOf(t *testing.T) {
	sent := time.Date(2026, 12, 4, 10, 0, 0, 100e6, time.UTC)
	got := sent.Add(200 * time.Millisecond) // the middle: 10:00:00.2
	for _, tc := range []struct {
		date time.Time
		want time.Duration
	}{
		{time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), 300 * time.Millisecond},
		{time.Date(2026, 12, 4, 10, 0, 5, 0, time.UTC), 5300 * time.Millisecond},
		{time.Date(2026, 12, 4, 9, 59, 50, 0, time.UTC), -9700 * time.Millisecond},
	} {
		if s := skewOf(tc.date, sent, got); s != tc.want {
			t.Errorf("date %s: skew %s, want %s", tc.date, s, tc.want)
		}
	}
}

// TestClockSkew asks a node's own join API for its clock: over TLS with
// the cluster's CA, a skew of about nothing.
func TestClockSkew(t *testing.T) {
	c, err := Start(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var self Member
	for _, m := range c.GossipMembers() {
		if m.Name == "n1" {
			self = m
		}
	}
	skew, err := c.ClockSkew(t.Context(), self)
	if err != nil {
		t.Fatal(err)
	}
	if skew.Abs() > 1500*time.Millisecond {
		t.Errorf("skew to itself %s", skew)
	}
}

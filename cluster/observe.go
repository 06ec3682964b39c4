package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
)

// GossipMembers are the hosts gossip knows (this one too), with their
// state: alive, dead or left.
func (c *Cluster) GossipMembers() []Member {
	if c.gossip == nil {
		return nil
	}
	return c.gossip.Members()
}

// observing are the dial options that tell observe of every unary
// request of a client.
func observing(observe func(method string, err error, took time.Duration)) []grpc.DialOption {
	if observe == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		start := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		observe(method, err, time.Since(start))
		return err
	})}
}

// ClockSkew estimates how far a member's clock is from this host's: it
// asks the member's join API for its CA (any reply carries the server's
// Date, to the second) and compares that with the middle of the round
// trip. The estimate is good to about a second plus half the round trip.
func (c *Cluster) ClockSkew(ctx context.Context, m Member) (time.Duration, error) {
	if m.IPv4 == "" || m.JoinPort == 0 {
		return 0, fmt.Errorf("%s has no join API address", m.Name)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true,
	}}
	u := "https://" + net.JoinHostPort(m.IPv4, strconv.Itoa(m.JoinPort)) + "/v1/ca"
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return 0, err
	}
	sent := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	got := time.Now()
	resp.Body.Close()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, fmt.Errorf("%s's join API sent no Date: %w", m.Name, err)
	}
	return skewOf(date, sent, got), nil
}

// skewOf is how far a peer's clock, which said date (to the second)
// while a request went from sent to got, is ahead of ours: date is the
// start of its second, so half a second is added.
func skewOf(date, sent, got time.Time) time.Duration {
	mid := sent.Add(got.Sub(sent) / 2)
	return date.Add(500 * time.Millisecond).Sub(mid)
}

package cluster

import (
	"context"
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

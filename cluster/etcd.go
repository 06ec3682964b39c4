package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// etcdMember is how to run this node's embedded etcd member.
type etcdMember struct {
	name       string
	dataDir    string // <data-dir>/etcd
	addr       netip.Addr
	clientPort int
	peerPort   int
	pki        pki
	// initialCluster and state matter only for a member without data;
	// etcd ignores them once its write-ahead log exists.
	initialCluster string
	state          string // embed.ClusterStateFlagNew or Existing
	token          string
	logLevel       string
	log            *slog.Logger
}

func hostPort(a netip.Addr, port int) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(port))
}

func (m etcdMember) clientURL() string { return "https://" + hostPort(m.addr, m.clientPort) }
func (m etcdMember) peerURL() string   { return "https://" + hostPort(m.addr, m.peerPort) }

// etcdHasData reports whether an etcd member has ever been started in dir.
func etcdHasData(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member", "wal"))
	return err == nil
}

// start runs the member and, with a timeout, waits until it serves: the
// timeout bounds the wait for the member to join its cluster's quorum.
func (m etcdMember) start(ctx context.Context, timeout time.Duration) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dataDir
	cu, _ := url.Parse(m.clientURL())
	pu, _ := url.Parse(m.peerURL())
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = m.initialCluster
	cfg.ClusterState = m.state
	cfg.InitialClusterToken = m.token
	for _, ti := range []*transport.TLSInfo{&cfg.ClientTLSInfo, &cfg.PeerTLSInfo} {
		ti.CertFile, ti.KeyFile, ti.TrustedCAFile = m.pki.nodeCert(), m.pki.nodeKey(), m.pki.caCert()
		ti.ClientCertAuth = true
	}
	cfg.EnableGRPCGateway = false
	// Keep an hour of history so that watchers which fell behind can
	// resume; older ones relist.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	// Two learners may wait at once, so that the cluster can go from one
	// voter to three without resting at two (members.go).
	cfg.MaxLearners = maxLearners
	// One `calico apply` is one transaction (etcdv3.MaxBatch resources, a
	// put and a guard each) of at most the API's 2 MiB of input.
	cfg.MaxTxnOps = 1024
	cfg.MaxRequestBytes = 4 << 20
	// embed.NewConfig leaves this 0, which etcd's own binary never does
	// (it defaults to 300 ms): every unary request is then "expensive",
	// formatted as text and logged at warning level ("request stats"),
	// and at the node's debug level (etcd's info) written too.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	cfg.LogLevel = m.logLevel
	if m.log != nil {
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(m.log, m.logLevel))
	} else {
		cfg.LogOutputs = []string{"stderr"}
	}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd member %s: %w", m.name, err)
	}
	if timeout == 0 {
		return e, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd member %s stopped while starting: %w", m.name, err)
	case <-t.C:
		e.Close()
		return nil, fmt.Errorf("etcd member %s did not become ready within %s (is a quorum of its cluster up?)", m.name, timeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
}

// newClient connects to etcd endpoints with the node's certificate, or to
// an external etcd with the credentials it was given.
func newClient(endpoints []string, p pki, external bool, opts ...grpc.DialOption) (*clientv3.Client, error) {
	tlsFor := p.clientTLS
	if external {
		tlsFor = p.externalTLS
	}
	tlsCfg, err := tlsFor()
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		// A voter whose host vanished without closing its connections is
		// noticed within about 4 s.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		DialOptions:          opts,
	}
	if external {
		// The embedded cluster's endpoints follow its member list in
		// Cluster.followVoters; an external one's follow etcd's own sync.
		cfg.AutoSyncInterval = 10 * time.Second
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %v: %w", endpoints, err)
	}
	return cli, nil
}

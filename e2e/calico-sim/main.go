// Command calico-sim runs a simulation of many hosts (package e2e/sim)
// beside real nodes in the lab. It runs in a lab namespace of its own
// whose interface reaches the real nodes (lab tests wire it), connects to
// the cluster's etcd with a client certificate it signs with the cluster
// CA for its own address (as a host that joins gets one), and serves its
// control API on a unix socket:
//
//	calico-sim -socket /tmp/sim.sock -etcd https://172.31.1.11:2379 \
//	    -pki /tmp/lab/host1/pki -src 172.30.255.254 -subnet 172.30.0.0/16
//
// It adds each host's address to -iface as it makes the host, and, for
// each network namespace given with -pin (the real nodes'), a permanent
// neighbour entry for it there: Linux's neighbour table is one for the
// whole machine, every namespace's entries counted against
// net.ipv4.neigh.default.gc_thresh3 (1,024 by default), but permanent
// entries are not counted, so a thousand simulated hosts do not crowd
// out the machine's (and other labs') neighbours. SIGTERM ends the
// hosts' sessions with a Cease and exits.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"calico/e2e/sim"
	"calico/store/etcdv3"
	"calico/store/ipam"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

func main() {
	socket := flag.String("socket", "", "control socket path")
	etcd := flag.String("etcd", "", "etcd endpoints, comma separated")
	pki := flag.String("pki", "", "a node's pki dir (ca.crt and ca.key of the cluster)")
	src := flag.String("src", "", "this process's own address (etcd connections come from it)")
	subnet := flag.String("subnet", "172.30.0.0/16", "the simulated hosts' addresses")
	iface := flag.String("iface", "eth0", "the interface the hosts' addresses go on")
	conns := flag.Int("conns", 4, "etcd client connections")
	port := flag.Int("port", 179, "the nodes' BGP port")
	level := flag.String("log-level", "info", "debug, info, warn, error")
	pin := flag.String("pin", "", "network namespace paths (comma separated) whose eth0 gets a permanent neighbour entry per host")
	flag.Parse()
	var lv slog.Level
	lv.UnmarshalText([]byte(*level))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var pins []string
	if *pin != "" {
		pins = strings.Split(*pin, ",")
	}
	if err := run(ctx, log, *socket, strings.Split(*etcd, ","), *pki, *src, *subnet, *iface, *conns, *port, pins); err != nil {
		fmt.Fprintln(os.Stderr, "calico-sim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, socket string, endpoints []string, pki, src, subnet, iface string, conns, port int, pins []string) error {
	srcAddr, err := netip.ParseAddr(src)
	if err != nil {
		return fmt.Errorf("-src: %w", err)
	}
	sn, err := netip.ParsePrefix(subnet)
	if err != nil {
		return fmt.Errorf("-subnet: %w", err)
	}
	tlsCfg, err := clientTLS(pki, srcAddr)
	if err != nil {
		return err
	}
	var clients []*clientv3.Client
	for range max(conns, 1) {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second,
			MaxCallSendMsgSize: 8 << 20, MaxCallRecvMsgSize: 256 << 20,
			DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(srcAddr, 0))}
				return d.DialContext(ctx, "tcp", addr)
			})},
		})
		if err != nil {
			return fmt.Errorf("connecting to etcd: %w", err)
		}
		defer cli.Close()
		clients = append(clients, cli)
	}
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("interface %s: %w", iface, err)
	}
	neigh, err := pinner(pins, link.Attrs().HardwareAddr)
	if err != nil {
		return err
	}
	addr := func(add bool) func(netip.Prefix) error {
		return func(p netip.Prefix) error {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			if add {
				if err := netlink.AddrReplace(link, a); err != nil {
					return err
				}
				return neigh(p.Addr(), true)
			}
			neigh(p.Addr(), false)
			return netlink.AddrDel(link, a)
		}
	}
	s, err := sim.New(ctx, sim.Config{
		Clients: clients, Store: etcdv3.New(clients[0]), IPAM: ipam.New(clients[0]), Subnet: sn,
		AddAddr: addr(true), DelAddr: addr(false), BGPPort: port, Log: log,
	})
	if err != nil {
		return err
	}
	defer s.Stop()
	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(ctx)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Println("calico-sim: ready")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// pinner returns what adds (or removes) a permanent neighbour entry for
// an address, with mac, on eth0 of each namespace in paths.
func pinner(paths []string, mac net.HardwareAddr) (func(netip.Addr, bool) error, error) {
	type pinned struct {
		h   *netlink.Handle
		idx int
	}
	var hs []pinned
	for _, p := range paths {
		ns, err := netns.GetFromPath(p)
		if err != nil {
			return nil, fmt.Errorf("-pin %s: %w", p, err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			return nil, fmt.Errorf("-pin %s: %w", p, err)
		}
		l, err := h.LinkByName("eth0")
		if err != nil {
			return nil, fmt.Errorf("-pin %s: %w", p, err)
		}
		hs = append(hs, pinned{h, l.Attrs().Index})
	}
	return func(a netip.Addr, add bool) error {
		for _, p := range hs {
			n := &netlink.Neigh{LinkIndex: p.idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: a.AsSlice(), HardwareAddr: mac}
			if !add {
				p.h.NeighDel(n)
				continue
			}
			if err := p.h.NeighSet(n); err != nil {
				return fmt.Errorf("pinning the neighbour entry of %s: %w", a, err)
			}
		}
		return nil
	}, nil
}

// clientTLS signs this process a client certificate for addr with the
// cluster CA in pki (etcd checks the addresses in a client certificate
// against the connection's), and trusts the CA.
func clientTLS(pki string, addr netip.Addr) (*tls.Config, error) {
	ca, err := tls.LoadX509KeyPair(filepath.Join(pki, "ca.crt"), filepath.Join(pki, "ca.key"))
	if err != nil {
		return nil, fmt.Errorf("loading the cluster CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "calico-sim", Organization: []string{"calico"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{addr.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      pool, MinVersion: tls.VersionTLS12,
	}, nil
}

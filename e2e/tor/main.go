// Command tor is the e2e tests' top-of-rack router's BGP speaker: a GoBGP
// server (no gRPC) that is a route reflector for every lab host given.
// The tests run it inside the tor network namespace, which routes between
// the racks.
//
//	tor -router-id 172.31.1.254 -listen 172.31.1.254,172.31.2.254 \
//	    -clients 172.31.1.11,172.31.1.12,172.31.2.13,172.31.2.14 \
//	    [-rack 172.31.1.0/24,fd00:31:1::/64 -rack 172.31.2.0/24,fd00:31:2::/64]
//
// With -rack (given once per rack: the rack's subnets), a route reflected
// to a client of one rack whose next hop lies in another rack gets the
// tor's own address as next hop (its address on the client's session), so
// that the next hop is on the client's link. Without it, the tor reflects
// routes unchanged, as a route reflector does (RFC 4456).
//
// Like a router, it installs the best path of every destination it learned
// in its namespace's kernel (protocol bgp), so that it forwards to the
// workloads. It prints "tor: ready" once it listens, logs sessions and
// best paths to stderr, and stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"
)

type racks [][]string

func (r *racks) String() string { return fmt.Sprint(*r) }
func (r *racks) Set(s string) error {
	var nets []string
	for _, n := range strings.Split(s, ",") {
		if _, err := netip.ParsePrefix(n); err != nil {
			return err
		}
		nets = append(nets, n)
	}
	*r = append(*r, nets)
	return nil
}

func main() {
	as := flag.Uint("as", 64512, "AS number")
	routerID := flag.String("router-id", "", "router id (an IPv4 address)")
	listen := flag.String("listen", "", "addresses to listen on, comma separated")
	port := flag.Int("port", 179, "port")
	clients := flag.String("clients", "", "route reflector clients' addresses, comma separated")
	var rs racks
	flag.Var(&rs, "rack", "one rack's subnets, comma separated (repeatable): next hop self across racks")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log, uint32(*as), *routerID, split(*listen), *port, split(*clients), rs); err != nil {
		fmt.Fprintln(os.Stderr, "tor:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func run(ctx context.Context, log *slog.Logger, as uint32, routerID string, listen []string, port int, clients []string, rs racks) error {
	srv := server.NewBgpServer(server.LoggerOption(logger{log}))
	go srv.Serve()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: as, RouterId: routerID, ListenPort: int32(port), ListenAddresses: listen,
	}}); err != nil {
		return fmt.Errorf("starting BGP: %w", err)
	}
	defer srv.Stop()
	if len(rs) > 0 {
		if err := nextHopSelfAcross(ctx, srv, rs); err != nil {
			return err
		}
	}
	poke := make(chan struct{}, 1)
	err := srv.WatchEvent(ctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}}},
	}, func(r *api.WatchEventResponse) {
		logEvent(log, r)
		select {
		case poke <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("watching events: %w", err)
	}
	go installRoutes(ctx, log, srv, poke)
	for _, c := range clients {
		a, err := netip.ParseAddr(c)
		if err != nil {
			return fmt.Errorf("client %q: %w", c, err)
		}
		fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
		if a.Is6() {
			fam.Afi = api.Family_AFI_IP6
		}
		err = srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
			Conf: &api.PeerConf{NeighborAddress: a.String(), PeerAsn: as},
			// The hosts connect to us.
			Transport:      &api.Transport{PassiveMode: true},
			Timers:         &api.Timers{Config: &api.TimersConfig{ConnectRetry: 5, HoldTime: 9, KeepaliveInterval: 3}},
			RouteReflector: &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: routerID},
			// The hosts restart gracefully: keep their routes meanwhile.
			GracefulRestart: &api.GracefulRestart{Enabled: true, RestartTime: 120},
			AfiSafis: []*api.AfiSafi{{
				Config:            &api.AfiSafiConfig{Family: fam, Enabled: true},
				MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
			}},
		}})
		if err != nil {
			return fmt.Errorf("adding client %s: %w", a, err)
		}
	}
	fmt.Println("tor: ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.StopBgp(stopCtx, &api.StopBgpRequest{})
}

// nextHopSelfAcross sets the tor's own address as the next hop of a route
// sent to a client of one rack when the route's next hop is in another.
func nextHopSelfAcross(ctx context.Context, srv *server.BgpServer, rs racks) error {
	var stmts []*api.Statement
	for i, nets := range rs {
		set := fmt.Sprintf("rack%d", i+1)
		err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR, Name: set, List: nets,
		}})
		if err != nil {
			return fmt.Errorf("adding neighbor set %s: %w", set, err)
		}
		var others []string
		for j, o := range rs {
			if j != i {
				others = append(others, o...)
			}
		}
		stmts = append(stmts, &api.Statement{
			Name: "to-" + set,
			Conditions: &api.Conditions{
				NeighborSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: set},
				NextHopInList: others,
			},
			Actions: &api.Actions{Nexthop: &api.NexthopAction{Self: true}},
		})
	}
	pol := &api.Policy{Name: "next-hop-self-across-racks", Statements: stmts}
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}); err != nil {
		return fmt.Errorf("adding the policy: %w", err)
	}
	err := srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_EXPORT,
		Policies: []*api.Policy{{Name: pol.Name}}, DefaultAction: api.RouteAction_ACCEPT,
	}})
	if err != nil {
		return fmt.Errorf("assigning the policy: %w", err)
	}
	return nil
}

// installRoutes keeps the kernel's bgp routes equal to the RIB's best
// paths: at every event and every second.
func installRoutes(ctx context.Context, log *slog.Logger, srv *server.BgpServer, poke <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poke:
		case <-tick.C:
		}
		if err := syncRoutes(ctx, srv); err != nil {
			log.Warn("installing routes", "err", err)
		}
	}
}

func syncRoutes(ctx context.Context, srv *server.BgpServer) error {
	want := map[netip.Prefix]netip.Addr{}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		err := srv.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_GLOBAL,
			Family:    &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
		}, func(d *api.Destination) {
			for _, p := range d.Paths {
				if !p.Best || p.IsWithdraw {
					continue
				}
				dst, err := netip.ParsePrefix(d.Prefix)
				nh, err2 := netip.ParseAddr(nextHop(p.Pattrs))
				if err == nil && err2 == nil {
					want[dst.Masked()] = nh
				}
			}
		})
		if err != nil {
			return fmt.Errorf("listing paths: %w", err)
		}
	}
	var errs []error
	have := map[netip.Prefix]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Protocol: unix.RTPROT_BGP}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return fmt.Errorf("listing routes: %w", err)
		}
		for _, r := range rs {
			dst, ok := netipx(r.Dst)
			gw, _ := netip.AddrFromSlice(r.Gw)
			if !ok {
				continue
			}
			if nh, wanted := want[dst]; wanted && nh == gw.Unmap() {
				have[dst] = true
				continue
			}
			if err := netlink.RouteDel(&r); err != nil {
				errs = append(errs, fmt.Errorf("deleting %s: %w", dst, err))
			}
		}
	}
	for dst, nh := range want {
		if have[dst] {
			continue
		}
		r := &netlink.Route{
			Dst:      &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
			Gw:       nh.AsSlice(),
			Protocol: unix.RTPROT_BGP,
		}
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("adding %s via %s: %w", dst, nh, err))
		}
	}
	return errors.Join(errs...)
}

func netipx(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

func logEvent(log *slog.Logger, r *api.WatchEventResponse) {
	switch ev := r.Event.(type) {
	case *api.WatchEventResponse_Peer:
		if ev.Peer.GetType() == api.WatchEventResponse_PeerEvent_STATE {
			st := ev.Peer.GetPeer().GetState()
			log.Info("session", "peer", st.GetNeighborAddress(), "state", st.GetSessionState().String())
		}
	case *api.WatchEventResponse_Table:
		for _, p := range ev.Table.GetPaths() {
			var pfx api.IPAddressPrefix
			if err := p.GetNlri().UnmarshalTo(&pfx); err != nil {
				continue
			}
			log.Info("best path", "prefix", fmt.Sprintf("%s/%d", pfx.Prefix, pfx.PrefixLen), "next_hop", nextHop(p.GetPattrs()), "withdraw", p.GetIsWithdraw())
		}
	}
}

func nextHop(attrs []*anypb.Any) string {
	for _, a := range attrs {
		var nh api.NextHopAttribute
		if a.UnmarshalTo(&nh) == nil {
			return nh.NextHop
		}
		var mp api.MpReachNLRIAttribute
		if a.UnmarshalTo(&mp) == nil && len(mp.NextHops) > 0 {
			return mp.NextHops[0]
		}
	}
	return ""
}

// logger adapts slog to GoBGP's logger: its Info is chatter and goes to
// Debug.
type logger struct{ log *slog.Logger }

func (l logger) emit(level slog.Level, msg string, f gobgplog.Fields) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	args := make([]any, 0, 2*len(f))
	for k, v := range f {
		args = append(args, k, v)
	}
	l.log.Log(context.Background(), level, msg, args...)
}

func (l logger) Panic(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l logger) Fatal(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l logger) Error(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l logger) Warn(msg string, f gobgplog.Fields)  { l.emit(slog.LevelWarn, msg, f) }
func (l logger) Info(msg string, f gobgplog.Fields)  { l.emit(slog.LevelDebug, msg, f) }
func (l logger) Debug(msg string, f gobgplog.Fields) { l.emit(slog.LevelDebug-4, msg, f) }
func (l logger) SetLevel(gobgplog.LogLevel)          {}
func (l logger) GetLevel() gobgplog.LogLevel         { return gobgplog.InfoLevel }

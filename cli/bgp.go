package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"time"

	"calico/node/api"
	"calico/store"

	ucli "github.com/urfave/cli/v3"
)

func bgpCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "bgp",
		Usage: "BGP peers and routes",
		Commands: []*ucli.Command{
			{
				Name:  "peer",
				Usage: "BGP peers outside the node mesh (BGPPeer resources)",
				Commands: []*ucli.Command{
					{
						Name:      "add",
						Usage:     "peer with a router: every node, or one --node",
						ArgsUsage: "IP[:PORT]",
						Flags: []ucli.Flag{
							dataDirFlag(),
							&ucli.StringFlag{Name: "as", Usage: "the peer's AS number (required)"},
							&ucli.StringFlag{Name: "node", Usage: "only this node peers with it"},
							&ucli.StringFlag{Name: "password-secret", Usage: "TCP MD5 password: the secret `NAME/KEY`, which every node reads from its own " + store.SecretPath("NAME", "KEY") + " (calico bgp secret set)"},
						},
						Action: bgpPeerAdd,
					},
					{
						Name:    "list",
						Aliases: []string{"ls"},
						Usage:   "list BGP peers",
						Flags:   []ucli.Flag{dataDirFlag()},
						Action:  bgpPeerList,
					},
					{
						Name:      "rm",
						Aliases:   []string{"remove"},
						Usage:     "remove the BGP peers with this address",
						ArgsUsage: "IP",
						Flags:     []ucli.Flag{dataDirFlag(), &ucli.StringFlag{Name: "node", Usage: "only the one for this node"}},
						Action:    bgpPeerRemove,
					},
				},
			},
			bgpSecretCommand(),
			{
				Name:   "routes",
				Usage:  "what this node advertises and the routes it installed from BGP",
				Flags:  []ucli.Flag{dataDirFlag(), outputFlag("json")},
				Action: show("/v1/bgp/routes", printBGPRoutes),
			},
		},
	}
}

func bgpPeerAdd(ctx context.Context, c *ucli.Command) error {
	arg, err := oneArg(c, "the peer's IP[:PORT]")
	if err != nil {
		return err
	}
	ap, err := store.ParsePeerIP(arg)
	if err != nil {
		return usagef("%v", err)
	}
	if c.String("as") == "" {
		return usagef("bgp peer add needs --as (the peer's AS number)")
	}
	as, err := store.ParseASNumber(c.String("as"))
	if err != nil || as == 0 {
		return usagef("--as %q is not an AS number", c.String("as"))
	}
	p := store.KindBGPPeer.New().(*store.BGPPeer)
	p.Metadata.Name = peerName(ap.Addr(), c.String("node"))
	p.Spec.PeerIP, p.Spec.ASNumber, p.Spec.Node = arg, &as, c.String("node")
	if ref := c.String("password-secret"); ref != "" {
		name, key, err := parseSecretRef(ref)
		if err != nil {
			return usagef("--password-secret: %v", err)
		}
		p.Spec.Password = &store.BGPPassword{SecretKeyRef: &store.SecretKeyRef{Name: name, Key: key}}
		if _, err := os.Stat(store.SecretPath(name, key)); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(c.Root().ErrWriter, "note: %s does not exist on this node: until it does, the session is not configured; "+
				"write it on every node with `calico bgp secret set %s/%s`\n", store.SecretPath(name, key), name, key)
		}
	}
	b, err := store.Encode(p, store.JSON)
	if err != nil {
		return err
	}
	return sendData(ctx, c, b, "create")
}

// peerName names the BGPPeer `bgp peer add` makes.
func peerName(ip netip.Addr, node string) string {
	name := "peer-" + strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
	if node != "" {
		name += "." + node
	}
	return name
}

func listPeers(ctx context.Context, c *ucli.Command) ([]*store.BGPPeer, error) {
	var res api.Resources
	if err := api.NewClient(c.String("data-dir")).Do(ctx, "GET", "/v1/resources/bgppeers", nil, nil, &res); err != nil {
		return nil, err
	}
	var out []*store.BGPPeer
	for _, item := range res.Items {
		var p store.BGPPeer
		if err := json.Unmarshal(item, &p); err != nil {
			return nil, err
		}
		out = append(out, &p)
	}
	return out, nil
}

// printBGPRoutes is `calico bgp routes` for people.
func printBGPRoutes(w io.Writer, r api.BGPRoutes) error {
	fmt.Fprintf(w, "Advertised: %s\n\n", orDash(strings.Join(r.Advertised, " ")))
	rows := [][]string{{"INSTALLED", "VIA"}}
	for _, i := range r.Installed {
		rows = append(rows, []string{i.Dst, strings.Join(i.Via, ",")})
	}
	return table(w, rows)
}

// bgpTable prints the BGP sessions of `calico status`.
func bgpTable(w io.Writer, sessions []api.BGPSession) error {
	rows := [][]string{{"BGP PEER", "AS", "TYPE", "NODE", "STATE", "SINCE", "RECEIVED", "ADVERTISED"}}
	for _, s := range sessions {
		since := "-"
		if !s.Since.IsZero() {
			since = time.Since(s.Since).Round(time.Second).String()
		}
		adv := fmt.Sprint(s.Advertised)
		if s.Advertised < 0 {
			adv = "-" // not counted on a node of many sessions
		}
		rows = append(rows, []string{s.Peer, fmt.Sprint(s.AS), s.Type, orDash(s.Node), s.State, since, fmt.Sprint(s.Received), adv})
	}
	return table(w, rows)
}

func bgpPeerList(ctx context.Context, c *ucli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	peers, err := listPeers(ctx, c)
	if err != nil {
		return err
	}
	rows := [][]string{{"NAME", "PEER", "AS", "NODE", "SELECTORS", "PASSWORD"}}
	for _, p := range peers {
		s := p.Spec
		as, node, sel := "-", "all", "-"
		if s.ASNumber != nil {
			as = fmt.Sprint(*s.ASNumber)
		}
		switch {
		case s.Node != "":
			node = s.Node
		case s.NodeSelector != "":
			node = s.NodeSelector
		}
		if s.PeerSelector != "" {
			sel = "peers " + s.PeerSelector
		}
		pw := "-"
		switch {
		case s.Password == nil:
		case s.Password.SecretKeyRef != nil:
			pw = "secret " + s.Password.SecretKeyRef.Name + "/" + s.Password.SecretKeyRef.Key
		default:
			pw = "stored (move it to a secret)"
		}
		rows = append(rows, []string{p.Metadata.Name, orDash(s.PeerIP), as, node, sel, pw})
	}
	return table(c.Root().Writer, rows)
}

func bgpPeerRemove(ctx context.Context, c *ucli.Command) error {
	arg, err := oneArg(c, "the peer's IP")
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(arg)
	if err != nil {
		return usagef("%q is not an IP address", arg)
	}
	peers, err := listPeers(ctx, c)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range peers {
		ap, err := store.ParsePeerIP(p.Spec.PeerIP)
		if err != nil || ap.Addr() != ip || c.String("node") != "" && p.Spec.Node != c.String("node") {
			continue
		}
		if err := deleteResource(ctx, c, store.KindBGPPeer, p.Metadata.Name); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return api.Errorf(api.NotFound, "no BGP peer with address %s", ip)
	}
	return nil
}

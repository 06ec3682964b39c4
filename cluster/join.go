package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"calico/cluster/token"
	"calico/store"
)

// The join API (HTTPS, 7947 by default) is how a new host becomes a
// member. Every member serves it with its node certificate:
//
//	GET  /v1/ca    the cluster CA certificate (public; the joiner checks
//	               its hash against the token before it sends anything)
//	POST /v1/join  with "Authorization: Bearer <token secret>": signs the
//	               joiner's public key for its name and addresses and
//	               returns what a member needs (joinResponse)
//
// Every member holds the CA key so that any member is a seed. That gives a
// member no power it lacks already: its certificate lets it write anything
// in etcd.

type joinRequest struct {
	Name      string       `json:"name"`
	IPv4      netip.Prefix `json:"ipv4,omitzero"`
	IPv6      netip.Prefix `json:"ipv6,omitzero"`
	PublicKey []byte       `json:"publicKey"` // PKIX DER
}

type joinResponse struct {
	ClusterID string   `json:"clusterID"`
	CACert    []byte   `json:"caCert"` // PEM
	CAKey     []byte   `json:"caKey"`  // PEM
	Cert      []byte   `json:"cert"`   // DER, for the joiner's key
	GossipKey []byte   `json:"gossipKey"`
	Endpoints []string `json:"endpoints"` // etcd client URLs of the voters
	Seeds     []string `json:"seeds"`     // gossip addresses of live members
	// External is true when the cluster uses an external etcd, whose
	// credentials come along.
	External bool   `json:"external,omitempty"`
	EtcdCA   []byte `json:"etcdCA,omitempty"`
	EtcdCert []byte `json:"etcdCert,omitempty"`
	EtcdKey  []byte `json:"etcdKey,omitempty"`
}

// errJoin* are the joiner's one-line reasons.
var (
	errJoinCA     = errors.New("its CA does not match the token's hash: it is not a member of the cluster this token is for")
	errJoinSecret = errors.New("it refused the token's secret: wrong token")
)

// joinHandler serves the join API.
func (c *Cluster) joinHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ca", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(c.caPEM)
	})
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !c.token.Matches(secret) {
			c.log.Warn("refused a join with a wrong token", "from", r.RemoteAddr)
			http.Error(w, "wrong token", http.StatusForbidden)
			return
		}
		var req joinRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, "reading the join request: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp, status, err := c.admit(r.Context(), req)
		if err != nil {
			c.log.Warn("refused a join", "node", req.Name, "from", r.RemoteAddr, "err", err)
			http.Error(w, err.Error(), status)
			return
		}
		c.log.Info("admitted a node", "node", req.Name, "from", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
	return mux
}

// admit checks a join request and signs the joiner's certificate.
func (c *Cluster) admit(ctx context.Context, req joinRequest) (joinResponse, int, error) {
	n := store.KindNode.New()
	n.Meta().Name = req.Name
	if err := store.Validate(n); err != nil {
		return joinResponse{}, http.StatusBadRequest, fmt.Errorf("node name %q: %w", req.Name, err)
	}
	if !req.IPv4.IsValid() && !req.IPv6.IsValid() {
		return joinResponse{}, http.StatusBadRequest, errors.New("the joiner gave no address")
	}
	if m, ok := c.gossip.Member(req.Name); ok && (m.State == "alive" || m.State == "suspect") &&
		m.IPv4 != prefixAddr(req.IPv4) {
		return joinResponse{}, http.StatusConflict, fmt.Errorf("node name %s is taken by a live member at %s", req.Name, m.IPv4)
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		return joinResponse{}, http.StatusBadRequest, fmt.Errorf("the joiner's public key: %w", err)
	}
	id := Identity{Name: req.Name, IPv4: req.IPv4, IPv6: req.IPv6}
	cert, err := c.pki.signNode(req.Name, id.addrs(), pub)
	if err != nil {
		return joinResponse{}, http.StatusInternalServerError, err
	}
	caKey, err := os.ReadFile(c.pki.caKey())
	if err != nil {
		return joinResponse{}, http.StatusInternalServerError, err
	}
	list, err := c.client.MemberList(ctx)
	if err != nil {
		return joinResponse{}, http.StatusServiceUnavailable, fmt.Errorf("the datastore is unavailable: %w", err)
	}
	resp := joinResponse{
		ClusterID: c.id.ClusterID, CACert: c.caPEM, CAKey: caKey, Cert: cert,
		GossipKey: c.gossipKey, Endpoints: voterURLs(list.Members), Seeds: c.liveSeeds(),
	}
	if c.id.External {
		resp.External, resp.Endpoints = true, c.client.Endpoints()
		resp.EtcdCA, resp.EtcdCert, resp.EtcdKey = c.pki.external()
	}
	return resp, http.StatusOK, nil
}

// requestJoin asks the member at seed to admit this node. It checks the
// member's CA against the token before it sends the secret.
func requestJoin(ctx context.Context, seed string, tok token.Token, req joinRequest) (joinResponse, error) {
	fail := func(err error) (joinResponse, error) {
		return joinResponse{}, fmt.Errorf("joining through %s: %w", seed, err)
	}
	base := "https://" + seed
	// First contact: nothing is trusted yet and nothing secret is sent.
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the CA is checked against the token below
	}}
	caPEM, err := firstContact(ctx, insecure, base+"/v1/ca")
	if err != nil {
		return fail(fmt.Errorf("cannot reach its join API: %w", err))
	}
	if token.HashCA(caPEM) != tok.CAHash {
		return fail(errJoinCA)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fail(errJoinCA)
	}
	// From here on the server must prove it holds a certificate of that CA.
	pinned := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/join", bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	hreq.Header.Set("Authorization", "Bearer "+tok.Secret)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := pinned.Do(hreq)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		if errors.As(err, &uerr) {
			return fail(errJoinCA)
		}
		return fail(fmt.Errorf("cannot reach its join API: %w", err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return fail(errJoinSecret)
	case resp.StatusCode != http.StatusOK:
		return fail(fmt.Errorf("it refused: %s", strings.TrimSpace(string(b))))
	}
	var jr joinResponse
	if err := json.Unmarshal(b, &jr); err != nil {
		return fail(fmt.Errorf("reading its answer: %w", err))
	}
	if !bytes.Equal(jr.CACert, caPEM) {
		return fail(errJoinCA)
	}
	return jr, nil
}

// joinRetryFor is how long the first contact with a seed is tried again:
// a seed whose node is still starting, or the first packets of a host
// that just came up (an ARP unanswered), fail a moment and then work.
const joinRetryFor = 5 * time.Second

// firstContact gets url, trying again every half second while
// joinRetryFor has not passed since the first try.
func firstContact(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	start := time.Now()
	for {
		b, err := get(ctx, c, url)
		if err == nil || time.Since(start) >= joinRetryFor {
			return b, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// seedAddr completes a --join value to host:port.
func seedAddr(s string, defaultPort int) (string, error) {
	if host, port, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
			return "", fmt.Errorf("--join %q is not ADDR[:PORT]", s)
		}
		return s, nil
	}
	if s == "" || strings.ContainsAny(s, "/ ") {
		return "", fmt.Errorf("--join %q is not ADDR[:PORT]", s)
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(defaultPort)), nil
}

// serveJoin runs the join API on the node's address until ctx is done.
func (c *Cluster) serveJoin(ctx context.Context, ln net.Listener) {
	pair, err := tls.LoadX509KeyPair(c.pki.nodeCert(), c.pki.nodeKey())
	if err != nil {
		c.log.Error("join API stopped", "err", err)
		return
	}
	srv := &http.Server{
		Handler:           c.joinHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
		c.log.Error("join API stopped", "err", err)
	}
}

// liveSeeds are the gossip addresses of the live members.
func (c *Cluster) liveSeeds() []string {
	var out []string
	for _, m := range c.gossip.Members() {
		if m.State == "alive" {
			out = append(out, m.Addr.String())
		}
	}
	return out
}

func prefixAddr(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.Addr().String()
}

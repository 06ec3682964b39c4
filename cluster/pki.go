package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// The cluster's TLS material lives under <data-dir>/pki: the cluster CA
// (its key only on nodes that may sign) and this node's certificate, which
// serves and authenticates etcd traffic in both directions.
type pki struct{ dir string }

func newPKI(dataDir string) pki { return pki{dir: filepath.Join(dataDir, "pki")} }

func (p pki) caCert() string   { return filepath.Join(p.dir, "ca.crt") }
func (p pki) caKey() string    { return filepath.Join(p.dir, "ca.key") }
func (p pki) nodeCert() string { return filepath.Join(p.dir, "node.crt") }
func (p pki) nodeKey() string  { return filepath.Join(p.dir, "node.key") }

// An external etcd's credentials, copied here so that restarts and joiners
// do not depend on where the user kept them.
func (p pki) etcdCA() string   { return filepath.Join(p.dir, "etcd-ca.crt") }
func (p pki) etcdCert() string { return filepath.Join(p.dir, "etcd-client.crt") }
func (p pki) etcdKey() string  { return filepath.Join(p.dir, "etcd-client.key") }

// external reads the external etcd's credentials; all nil when the
// cluster's etcd is embedded or needs no TLS.
func (p pki) external() (ca, cert, key []byte) {
	ca, _ = os.ReadFile(p.etcdCA())
	cert, _ = os.ReadFile(p.etcdCert())
	key, _ = os.ReadFile(p.etcdKey())
	return ca, cert, key
}

// saveExternal stores an external etcd's credentials (any may be empty).
func (p pki) saveExternal(ca, cert, key []byte) error {
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{{p.etcdCA(), ca, 0o644}, {p.etcdCert(), cert, 0o644}, {p.etcdKey(), key, 0o600}} {
		if len(f.data) == 0 {
			continue
		}
		if err := writeFileAtomic(f.path, f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// externalTLS is the TLS configuration for an external etcd, nil when it
// was given no credentials (plain http endpoints).
func (p pki) externalTLS() (*tls.Config, error) {
	ca, cert, key := p.external()
	if ca == nil && cert == nil {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("%s holds no certificate", p.etcdCA())
		}
		cfg.RootCAs = pool
	}
	if cert != nil {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("the external etcd's client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 365 * 24 * time.Hour
	// renewBefore is how close to expiry a node certificate is renewed on
	// start.
	renewBefore = 90 * 24 * time.Hour
)

// createCA makes a new cluster CA.
func (p pki) createCA(clusterID string) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "calico-ca-" + clusterID, Organization: []string{"calico"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writeKeyPair(p.caCert(), p.caKey(), der, key)
}

// issueNode makes this node a new key and a certificate for its name and
// addresses, signed with the cluster CA.
func (p pki) issueNode(name string, addrs []netip.Addr) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := p.signNode(name, addrs, &key.PublicKey)
	if err != nil {
		return err
	}
	return writeKeyPair(p.nodeCert(), p.nodeKey(), der, key)
}

// signNode signs a certificate for a node's name and addresses and its
// public key. Certificates are for both server and client use: etcd
// members present them to each other and to clients, and etcd checks the
// addresses in them against the remote address.
func (p pki) signNode(name string, addrs []netip.Addr, pub any) ([]byte, error) {
	ca, caKey, err := p.loadCA()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"calico"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{name, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, a := range addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
}

// renewNode reissues the node certificate when it is close to expiry and
// this node holds the CA key.
func (p pki) renewNode(name string, addrs []netip.Addr) (bool, error) {
	b, err := os.ReadFile(p.nodeCert())
	if err != nil {
		return false, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return false, fmt.Errorf("%s holds no certificate", p.nodeCert())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false, err
	}
	if time.Until(cert.NotAfter) > renewBefore {
		return false, nil
	}
	if _, err := os.Stat(p.caKey()); err != nil {
		return false, fmt.Errorf("node certificate expires %s and this node cannot renew it: %w", cert.NotAfter.Format(time.DateOnly), err)
	}
	return true, p.issueNode(name, addrs)
}

func (p pki) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(p.caCert(), p.caKey())
	if err != nil {
		return nil, nil, fmt.Errorf("loading the cluster CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("the cluster CA key is not an ECDSA key")
	}
	return cert, key, nil
}

// clientTLS is the TLS configuration this node uses as an etcd client.
func (p pki) clientTLS() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(p.nodeCert(), p.nodeKey())
	if err != nil {
		return nil, fmt.Errorf("loading the node certificate: %w", err)
	}
	caPEM, err := os.ReadFile(p.caCert())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", p.caCert())
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func writeKeyPair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// ClientFiles are the files a client of the datastore (Calico's own
// tools, etcdctl) on this node authenticates with: the CA of the etcd
// members' certificates and a client certificate and key — the cluster's
// CA and this node's own certificate, or, with an external etcd, the
// credentials it was given ("" for any it was not).
func ClientFiles(dataDir string, external bool) (ca, cert, key string) {
	p := newPKI(dataDir)
	if !external {
		return p.caCert(), p.nodeCert(), p.nodeKey()
	}
	exists := func(path string) string {
		if _, err := os.Stat(path); err != nil {
			return ""
		}
		return path
	}
	return exists(p.etcdCA()), exists(p.etcdCert()), exists(p.etcdKey())
}

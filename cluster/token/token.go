// Package token is a cluster's join token: its form, and where a member
// keeps it. It is apart from cluster so that `calico token` need not link
// the cluster's machinery.
package token

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A join token is "K1" + hex(sha256(cluster CA certificate, PEM)) + "::" +
// a secret. The hash lets a joiner check that it talks to the cluster the
// token is for before it sends anything; the secret proves to the cluster
// that the joiner may join (as in k3s' "secure" tokens).
type Token struct {
	CAHash string // 64 hex digits
	Secret string
}

const tokenPrefix = "K1"

func (t Token) String() string { return tokenPrefix + t.CAHash + "::" + t.Secret }

// Parse reads a join token and says what is wrong with a bad one.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	hash, secret, found := strings.Cut(rest, "::")
	if !ok || !found {
		return Token{}, errors.New("the token is not a calico join token (K1<CA hash>::<secret>; `calico token` on a member prints it)")
	}
	if len(hash) != 2*sha256.Size {
		return Token{}, errors.New("the token's CA hash is not 64 hex digits")
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return Token{}, errors.New("the token's CA hash is not 64 hex digits")
	}
	if len(secret) < 16 {
		return Token{}, errors.New("the token's secret is too short")
	}
	return Token{CAHash: strings.ToLower(hash), Secret: secret}, nil
}

// HashCA is the token's hash of a CA certificate in PEM.
func HashCA(pem []byte) string {
	h := sha256.Sum256(pem)
	return hex.EncodeToString(h[:])
}

// Matches reports whether a presented secret is this token's, in constant
// time.
func (t Token) Matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1
}

// Path is where a member keeps the token.
func Path(dataDir string) string { return filepath.Join(dataDir, "pki", "token") }

// Load reads the join token of the cluster this data dir belongs to.
func Load(dataDir string) (Token, error) {
	b, err := os.ReadFile(Path(dataDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Token{}, fmt.Errorf("%s holds no cluster (no join token): is this the node's --data-dir?", dataDir)
		}
		return Token{}, err
	}
	return Parse(string(b))
}

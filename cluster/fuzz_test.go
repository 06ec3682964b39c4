package cluster

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// FuzzJoinAPI sends the join API any token and any body: it answers
// every request with a certificate or a refusal, never panics, and signs
// nothing for a wrong token.
func FuzzJoinAPI(f *testing.F) {
	c, err := Start(f.Context(), testConfig(f, f.TempDir()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(c.Close)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	good, _ := json.Marshal(joinRequest{Name: "n2", IPv4: netip.MustParsePrefix("127.0.0.2/8"), PublicKey: pub})
	for _, seed := range []struct{ auth, body string }{
		{c.token.Secret, string(good)}, {"wrong", string(good)}, {c.token.Secret, "{}"}, {c.token.Secret, "{"},
		{c.token.Secret, `{"name": "Bad_Name", "ipv4": "127.0.0.2/8"}`}, {c.token.Secret, `{"name": "n3", "publicKey": "AAAA"}`},
		{"", ""}, {c.token.Secret, strings.Repeat("[", 100000)},
	} {
		f.Add(seed.auth, []byte(seed.body))
	}
	h := c.joinHandler()
	f.Fuzz(func(t *testing.T, auth string, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/join", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auth)
		h.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code == http.StatusOK && auth != c.token.Secret:
			t.Fatalf("a wrong token %q was admitted", auth)
		case !slices.Contains([]int{http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusConflict}, code):
			t.Fatalf("join with %q answered %d: %s", body, code, rec.Body)
		case code != http.StatusOK && strings.Count(strings.TrimSpace(rec.Body.String()), "\n") > 0:
			t.Fatalf("a refusal of more than one line: %q", rec.Body)
		}
	})
}

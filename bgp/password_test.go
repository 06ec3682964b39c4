package bgp

import (
	"calico/internal/testutil"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secret = "s3cret-Do-Not-Print"

// writeSecret writes a password file with mode perm and returns its path.
func writeSecret(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return path
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(writeSecret(t, dir, "target", secret, 0o600), link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       Password
		err        string
	}{
		{name: "ok", path: writeSecret(t, dir, "ok", secret, 0o600), want: secret},
		{name: "read-only", path: writeSecret(t, dir, "ro", secret, 0o400), want: secret},
		{name: "newline", path: writeSecret(t, dir, "nl", secret+"\n", 0o600), want: secret},
		{name: "crlf", path: writeSecret(t, dir, "crlf", secret+"\r\n", 0o600), want: secret},
		{name: "80 bytes", path: writeSecret(t, dir, "80", strings.Repeat("x", 80)+"\n", 0o600), want: Password(strings.Repeat("x", 80))},
		{name: "symlink", path: link, want: secret},
		{name: "missing", path: filepath.Join(dir, "nothing"), err: "does not exist"},
		{name: "empty", path: writeSecret(t, dir, "empty", "", 0o600), err: "is empty"},
		{name: "newline only", path: writeSecret(t, dir, "blank", "\n", 0o600), err: "is empty"},
		{name: "81 bytes", path: writeSecret(t, dir, "81", strings.Repeat("x", 81), 0o600), err: "more than 80 bytes"},
		{name: "group", path: writeSecret(t, dir, "group", secret, 0o640), err: "has mode 0640: its group or others may read it"},
		{name: "others", path: writeSecret(t, dir, "others", secret, 0o604), err: "has mode 0604"},
		{name: "group write", path: writeSecret(t, dir, "gw", secret, 0o620), err: "has mode 0620"},
		{name: "directory", path: t.TempDir(), err: "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadPasswordFile(tc.path)
			switch {
			case tc.err == "" && (err != nil || got != tc.want):
				t.Errorf("ReadPasswordFile = %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.path)):
				t.Errorf("ReadPasswordFile = %v; want an error naming the file and saying %q", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestPasswordNeverPrinted: a Peer or its status printed or encoded any
// way shows no password.
func TestPasswordNeverPrinted(t *testing.T) {
	p := Peer{Addr: addrB, AS: testAS, Password: secret}
	st := PeerStatus{Peer: p, State: "established"}
	j, _ := json.Marshal(st)
	for _, s := range []string{
		fmt.Sprint(p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), fmt.Sprintf("%s", p.Password),
		fmt.Sprintf("%q", p.Password), fmt.Sprintf("%x", p.Password), fmt.Sprintf("%v", st), string(j),
	} {
		if strings.Contains(s, "s3cret") || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Errorf("printed %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(p), "[redacted]") {
		t.Errorf("a peer with a password prints as %v; want [redacted] in its place", p)
	}
}

// TestPasswordFileRefused: a session whose password file cannot be used
// is not configured, Peers says why, and the problem is logged once
// however often peers are set; once the file is fixed the session is
// configured at the next SetPeers.
func TestPasswordFileRefused(t *testing.T) {
	var logs testutil.SyncBuffer
	s, err := Start(t.Context(), Config{
		RouterID: addrA, AS: testAS, ListenPort: -1,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	path := writeSecret(t, t.TempDir(), "password", secret, 0o644)
	peer := Peer{Addr: addrB, AS: testAS, Port: freePort(t, addrB), Type: "mesh", Name: "b", PasswordFile: path}
	for range 3 {
		setPeers(t, s, peer)
	}
	st, err := s.Peers(t.Context())
	if err != nil || len(st) != 1 || st[0].Addr != addrB || !strings.HasPrefix(st[0].State, "refused: ") ||
		!strings.Contains(st[0].Problem, "its group or others may read it") || st[0].Name != "b" {
		t.Fatalf("Peers = %+v, %v; want B refused for its password file's mode", st, err)
	}
	if n := strings.Count(logs.String(), "their password cannot be used"); n != 1 {
		t.Errorf("logged the problem %d times; want once:\n%s", n, logs.String())
	}

	os.Chmod(path, 0o600)
	setPeers(t, s, peer)
	st, err = s.Peers(t.Context())
	if err != nil || len(st) != 1 || strings.HasPrefix(st[0].State, "refused") || st[0].Problem != "" {
		t.Fatalf("Peers after the fix = %+v, %v; want B configured", st, err)
	}
	if !strings.Contains(logs.String(), "no longer refused") {
		t.Errorf("the fix is not logged:\n%s", logs.String())
	}

	os.Remove(path)
	setPeers(t, s, peer)
	if st, _ := s.Peers(t.Context()); len(st) != 1 || !strings.Contains(st[0].State, "does not exist") {
		t.Errorf("Peers after the file went = %+v; want B refused (and its session gone)", st)
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the log shows the password:\n%s", logs.String())
	}
}

// TestPasswordFileOptional: a secretKeyRef with optional: true whose file
// does not exist is a session without a password; a file that exists
// but cannot be used still leaves the session out.
func TestPasswordFileOptional(t *testing.T) {
	s, err := Start(t.Context(), Config{RouterID: addrA, AS: testAS, ListenPort: -1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	dir := t.TempDir()
	peer := Peer{Addr: addrB, AS: testAS, Port: freePort(t, addrB), Type: "mesh", Name: "b",
		PasswordFile: filepath.Join(dir, "absent"), PasswordOptional: true}
	setPeers(t, s, peer)
	if st, err := s.Peers(t.Context()); err != nil || len(st) != 1 || strings.HasPrefix(st[0].State, "refused") || st[0].Problem != "" {
		t.Fatalf("Peers with an optional secret absent = %+v, %v; want B configured without a password", st, err)
	}
	peer.PasswordFile = writeSecret(t, dir, "password", secret, 0o644)
	setPeers(t, s, peer)
	if st, _ := s.Peers(t.Context()); len(st) != 1 || !strings.HasPrefix(st[0].State, "refused: ") {
		t.Errorf("Peers with an optional secret readable by others = %+v; want B refused", st)
	}
	peer.PasswordFile, peer.PasswordOptional = filepath.Join(dir, "absent"), false
	setPeers(t, s, peer)
	if st, _ := s.Peers(t.Context()); len(st) != 1 || !strings.Contains(st[0].State, "does not exist") {
		t.Errorf("Peers with a required secret absent = %+v; want B refused", st)
	}
}

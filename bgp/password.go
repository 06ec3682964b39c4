package bgp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
)

// Password is a session's TCP MD5 password. It prints (and marshals) as
// "[redacted]", so that a Peer can be logged or shown without it.
type Password string

// MaxPasswordLen is the longest TCP MD5 key the kernel takes
// (TCP_MD5SIG_MAXKEYLEN).
const MaxPasswordLen = 80

func (p Password) String() string {
	if p == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the password from %#v too.
func (p Password) GoString() string { return fmt.Sprintf("%q", p.String()) }

// MarshalText hides the password from encoders.
func (p Password) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ReadPasswordFile reads a session's password from a file a secret was
// written to: a regular file (symbolic links are followed, as Kubernetes
// mounts secrets) that neither its group nor others may read or write,
// holding 1 to 80 bytes; one trailing newline is not part of the
// password. The error says what is wrong with the file and never holds
// the password.
func ReadPasswordFile(path string) (Password, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", missingFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("cannot open %s: %w", path, cause(err))
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read %s: %w", path, cause(err))
	case !st.Mode().IsRegular():
		return "", fmt.Errorf("%s is not a regular file", path)
	case st.Mode().Perm()&0o077 != 0:
		return "", fmt.Errorf("%s has mode %04o: its group or others may read it (chmod 600 it)", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxPasswordLen+3))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, cause(err))
	}
	b = trimNewline(b)
	switch {
	case len(b) == 0:
		return "", fmt.Errorf("%s is empty", path)
	case len(b) > MaxPasswordLen:
		return "", fmt.Errorf("%s holds more than %d bytes (the kernel's TCP MD5 limit)", path, MaxPasswordLen)
	}
	return Password(b), nil
}

// cause is a path error's cause, without the path (which the caller
// gives).
func cause(err error) error {
	if c := errors.Unwrap(err); c != nil {
		return c
	}
	return err
}

// trimNewline drops one trailing "\n" or "\r\n".
func trimNewline(b []byte) []byte {
	b, _ = bytes.CutSuffix(b, []byte("\n"))
	b, _ = bytes.CutSuffix(b, []byte("\r"))
	return b
}

// refusal is a session that is not configured because its password
// file cannot be used.
type refusal struct {
	peer    Peer
	problem string
}

// withPasswords reads the password file of every peer that has one. A
// peer whose file cannot be used, or that is Refused, is left out (no session: a session
// without the password the operator asked for would be one the peer
// refuses, or worse, accepts) and recorded for Peers; each new problem is
// logged once, and so is its end.
func (s *Speaker) withPasswords(peers []Peer) []Peer {
	out := make([]Peer, 0, len(peers))
	refused := map[netip.Addr]refusal{}
	for _, p := range peers {
		if p.Refused != "" {
			refused[p.Addr.Unmap()] = refusal{peer: p, problem: p.Refused}
			continue
		}
		if p.PasswordFile != "" {
			pw, err := ReadPasswordFile(p.PasswordFile)
			if errors.Is(err, fs.ErrNotExist) && p.PasswordOptional {
				err = nil // optional and absent: no password
			}
			if err != nil {
				refused[p.Addr.Unmap()] = refusal{peer: p, problem: err.Error()}
				continue
			}
			p.Password = pw
		}
		out = append(out, p)
	}
	s.pmu.Lock()
	before := s.refused
	s.refused = refused
	s.pmu.Unlock()
	// One line per problem, naming its sessions (a mesh password file
	// that is missing concerns every other node).
	news := map[string][]netip.Addr{}
	for _, addr := range slices.SortedFunc(maps.Keys(refused), netip.Addr.Compare) {
		if r := refused[addr]; before[addr].problem != r.problem {
			news[r.problem] = append(news[r.problem], addr)
		}
	}
	for _, problem := range slices.Sorted(maps.Keys(news)) {
		s.log.Warn("BGP sessions not configured: their password cannot be used", "peers", news[problem], "problem", problem)
	}
	var fixed []netip.Addr
	for _, addr := range slices.SortedFunc(maps.Keys(before), netip.Addr.Compare) {
		if _, still := refused[addr]; !still {
			fixed = append(fixed, addr)
		}
	}
	if len(fixed) > 0 {
		s.log.Info("BGP sessions no longer refused for their password", "peers", fixed)
	}
	return out
}

// refusedStatus is the sessions left out for their password files, as
// Peers reports them.
func (s *Speaker) refusedStatus() []PeerStatus {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	var out []PeerStatus
	for _, r := range s.refused {
		p := r.peer
		p.Addr = p.Addr.Unmap()
		out = append(out, PeerStatus{Peer: p, State: "refused: " + r.problem, Problem: r.problem})
	}
	return out
}

// missingFile is a password file that does not exist; it is
// fs.ErrNotExist for errors.Is.
type missingFile string

func (m missingFile) Error() string { return string(m) + " does not exist" }
func (m missingFile) Unwrap() error { return fs.ErrNotExist }

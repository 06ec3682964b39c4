package cluster

import (
	"calico/cluster/token"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Identity is what a node remembers about itself across restarts, in
// <data-dir>/node.json. It is written last when a node founds or joins a
// cluster, so its presence means the node is a member.
type Identity struct {
	Name      string       `json:"name"`
	ClusterID string       `json:"clusterID"`
	IPv4      netip.Prefix `json:"ipv4,omitzero"`
	IPv6      netip.Prefix `json:"ipv6,omitzero"`
	// Role is "voter" for a node with an etcd member, "client" otherwise.
	Role string `json:"role"`
	// External is true when the cluster uses an external etcd: every node
	// is a client of it.
	External bool      `json:"external,omitempty"`
	Created  time.Time `json:"created"`
}

func identityPath(dataDir string) string { return filepath.Join(dataDir, "node.json") }

// LoadIdentity reads the node's identity; ok is false when there is none.
func LoadIdentity(dataDir string) (id Identity, ok bool, err error) {
	b, err := os.ReadFile(identityPath(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, false, fmt.Errorf("reading %s: %w", identityPath(dataDir), err)
	}
	return id, true, nil
}

// save writes the identity atomically.
func (id Identity) save(dataDir string) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(identityPath(dataDir), append(b, '\n'), 0o600)
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// fits says why a node's saved identity cannot be resumed with cfg: it
// names another node or moves the node's addresses.
func (id Identity) fits(cfg Config) error {
	if cfg.Name != "" && cfg.Name != id.Name {
		return fmt.Errorf("data dir %s belongs to node %q, not %q", cfg.DataDir, id.Name, cfg.Name)
	}
	if cfg.IPv4.IsValid() && cfg.IPv4.Addr() != id.IPv4.Addr() {
		return fmt.Errorf("node %s was started with --ip %s before; its etcd member is bound to that address, so it cannot move to %s", id.Name, id.IPv4.Addr(), cfg.IPv4.Addr())
	}
	if cfg.IPv6.IsValid() && cfg.IPv6.Addr() != id.IPv6.Addr() {
		return fmt.Errorf("node %s was started with --ip6 %s before, not %s", id.Name, id.IPv6.Addr(), cfg.IPv6.Addr())
	}
	return nil
}

// saveToken keeps the cluster's join token where token.Load finds it.
func saveToken(t token.Token, dataDir string) error {
	return writeFileAtomic(token.Path(dataDir), []byte(t.String()+"\n"), 0o600)
}

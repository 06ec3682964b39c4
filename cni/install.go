package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// InstallConfig is what Install writes where.
type InstallConfig struct {
	// BinDir gets the plugins (links to Self), ConfDir the network's
	// conflist.
	BinDir, ConfDir string
	// Network is the CNI network's name (and its profile's).
	Network string
	// Self is the calico binary the links point at.
	Self string
	// DataDir is the node's data dir; it gets the nodename file.
	DataDir string
	// Node is the node's name; IPv6 says whether containers get an IPv6
	// address too (the cluster has an IPv6 pool).
	Node string
	IPv6 bool
}

// Installed is what Install wrote.
type Installed struct {
	Links    []string `json:"links"`
	Conflist string   `json:"conflist"`
	Nodename string   `json:"nodename"`
}

// Install links the binary into the CNI plugin dir as calico and
// calico-ipam, writes the network's conflist and the node's name in
// <data-dir>/nodename, as Calico's node does. Each file is replaced
// whole (written aside, then renamed).
func Install(c InstallConfig) (*Installed, error) {
	out := &Installed{}
	if err := os.MkdirAll(c.BinDir, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"calico", IPAMName} {
		link := filepath.Join(c.BinDir, name)
		tmp := link + ".calico-tmp"
		os.Remove(tmp)
		if err := os.Symlink(c.Self, tmp); err != nil {
			return nil, fmt.Errorf("linking %s: %w", link, err)
		}
		if err := os.Rename(tmp, link); err != nil {
			os.Remove(tmp)
			return nil, fmt.Errorf("linking %s: %w", link, err)
		}
		out.Links = append(out.Links, link)
	}
	b, err := json.MarshalIndent(Conflist(c), "", "  ")
	if err != nil {
		return nil, err
	}
	out.Conflist = filepath.Join(c.ConfDir, "10-"+c.Network+".conflist")
	if err := writeFile(out.Conflist, append(b, '\n')); err != nil {
		return nil, err
	}
	out.Nodename = filepath.Join(c.DataDir, "nodename")
	if err := writeFile(out.Nodename, []byte(c.Node)); err != nil {
		return nil, err
	}
	return out, nil
}

// Conflist is the network config Install writes: CNI 1.0.0 for the
// runtimes that know no newer (containerd 1.6, Podman 4), 1.1.0 for
// those that do (GC, STATUS).
func Conflist(c InstallConfig) map[string]any {
	assign6 := "false"
	if c.IPv6 {
		assign6 = "true"
	}
	plugin := map[string]any{
		"type":      "calico",
		"log_level": "info",
		"nodename":  c.Node,
		"ipam":      map[string]any{"type": IPAMName, "assign_ipv4": "true", "assign_ipv6": assign6},
	}
	if c.DataDir != DefaultDataDir {
		plugin["data_dir"] = c.DataDir
	}
	return map[string]any{
		"cniVersion":  "1.0.0",
		"cniVersions": []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"},
		"name":        c.Network,
		"plugins":     []any{plugin},
	}
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".calico-tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

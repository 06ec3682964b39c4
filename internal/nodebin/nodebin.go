//go:build split

package nodebin

import (
	_ "embed" // the full binary
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// binary is the full calico binary of the same commit and platform;
// sum is its SHA-256 in hex, both written by the Makefile before the
// split build.
var (
	//go:embed calico-node
	binary string
	//go:embed calico-node.sha256
	sum string
)

// Exec runs the full binary with args in place of this process, unpacked
// into dir (made if missing, 0700). It returns only on failure.
func Exec(dir string, args []string) error {
	path, err := unpack(dir)
	if err != nil {
		return fmt.Errorf("unpacking the node's binary into %s: %w", dir, err)
	}
	return execErr(unix.Exec(path, args, os.Environ()))
}

// ExecInMemory runs the full binary with args in place of this process,
// from an anonymous memory file. It returns only on failure.
func ExecInMemory(args []string) error {
	fd, err := unix.MemfdCreate("calico", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("making a memory file for the node's binary: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:calico")
	if _, err := io.WriteString(f, binary); err != nil {
		f.Close()
		return fmt.Errorf("writing the node's binary to memory: %w", err)
	}
	// The descriptor closes at the exec, after the kernel has opened the
	// file (an ELF binary needs no path afterwards).
	return execErr(unix.Exec("/proc/self/fd/"+strconv.Itoa(fd), args, os.Environ()))
}

func execErr(err error) error { return fmt.Errorf("running the node's binary: %w", err) }

// name is the unpacked binary's file name: its hash, so that binaries of
// different builds never meet under one name.
func name() string { return "calico-" + strings.TrimSpace(sum)[:16] }

// unpack makes dir/name() hold the full binary: kept when it is there
// (intact), else written whole under a temporary name and renamed into place. Other
// builds' binaries in dir are removed (a node running one keeps it open).
func unpack(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name())
	if intact(path) {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, ".calico-*")
	if err != nil {
		return "", err
	}
	_, err = io.WriteString(tmp, binary)
	if err == nil {
		err = tmp.Chmod(0o700)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	removeOthers(dir, path)
	return path, nil
}

// intact reports whether path holds the embedded binary, by its size:
// the name is the binary's hash and the file is written whole before it
// is renamed into place, in a directory only root may write. Hashing
// the file at every start would cost about 30 ms of each node start.
func intact(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() == int64(len(binary))
}

// removeOthers removes what earlier unpacks left in dir: other builds'
// binaries and temporary files of unpacks that did not finish.
func removeOthers(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p != keep && (strings.HasPrefix(e.Name(), "calico-") || strings.HasPrefix(e.Name(), ".calico-")) {
			os.Remove(p) // best effort: a binary left over costs only disk
		}
	}
}

//go:build split

package nodebin

import (
	"crypto/sha256"
	_ "embed" // the full binary
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// binary is the full calico binary of the same commit and platform;
// sum is sha256sum's line for it, both written by the Makefile before the
// split build.
var (
	//go:embed calico-node
	binary string
	//go:embed calico-node.sha256
	sum string
)

// Exec runs the full binary with args in place of this process, unpacked
// into dir (made if missing, 0700), once ready says go on. It returns
// only on failure, or with ready's error.
func Exec(dir string, args []string, ready func() error) error {
	path, err := unpack(dir)
	if err != nil {
		return fmt.Errorf("unpacking the node's binary into %s: %w", dir, err)
	}
	if err := ready(); err != nil {
		return err
	}
	return execErr(unix.Exec(path, args, os.Environ()))
}

// ExecInMemory runs the full binary with args in place of this process,
// from an anonymous memory file. It returns only on failure.
func ExecInMemory(args []string) error {
	// MFD_EXEC: where vm.memfd_noexec is set, a memfd is not executable
	// without it; kernels before 6.3 do not know it (EINVAL).
	fd, err := unix.MemfdCreate("calico", unix.MFD_CLOEXEC|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("calico", unix.MFD_CLOEXEC)
	}
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
func name() string { return "calico-" + hash()[:16] }

// hash is the embedded binary's SHA-256 in hex (sha256sum's first field).
func hash() string {
	if f := strings.Fields(sum); len(f) > 0 {
		return f[0]
	}
	return ""
}

// unpacked matches the names of unpacked binaries.
var unpacked = regexp.MustCompile(`^calico-[0-9a-f]{16}$`)

// unpack makes dir/name() hold the full binary: kept when it is there
// (intact), else written whole under a temporary name and renamed into
// place. Other builds' binaries in dir are removed (a node running one
// keeps it open). dir must be this user's and writable by no one else:
// root runs what it holds.
func unpack(dir string) (string, error) {
	if len(hash()) != 2*sha256.Size {
		return "", errors.New("this build embeds no hash of the node's binary (build it with make)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if _, err := private(dir, true); err != nil {
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

// private checks that path (not a link) is this user's and writable by no
// one else: a directory when dir, else a regular file of mode 0700. It
// returns what it read of path.
func private(path string, dir bool) (os.FileInfo, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case dir && !st.IsDir(), !dir && !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a plain %s", path, map[bool]string{true: "directory", false: "file"}[dir])
	case !ok || int(sys.Uid) != os.Geteuid():
		return nil, fmt.Errorf("%s is not owned by this user (uid %d)", path, os.Geteuid())
	case st.Mode().Perm()&0o022 != 0, !dir && st.Mode().Perm() != 0o700:
		return nil, fmt.Errorf("%s has mode %v: others may write it", path, st.Mode().Perm())
	}
	return st, nil
}

// intact reports whether path holds the embedded binary: this user's
// file, mode 0700, of its size. The name is the binary's hash, and the
// file is written whole before it is renamed into place in a directory
// only this user may write; hashing it at every start would cost about
// 30 ms of each node start.
func intact(path string) bool {
	st, err := private(path, false)
	return err == nil && st.Size() == int64(len(binary))
}

// removeOthers removes what earlier unpacks left in dir: other builds'
// binaries and temporary files of unpacks that did not finish (older than
// a minute: another `calico up` may be writing one now). Nothing else.
func removeOthers(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case p == keep:
		case unpacked.MatchString(e.Name()):
			os.Remove(p) // best effort: a binary left over costs only disk
		case strings.HasPrefix(e.Name(), ".calico-"):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
				os.Remove(p)
			}
		}
	}
}

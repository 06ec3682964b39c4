package testutil

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Privileged gates a test that needs root. The test must be named
// TestPrivileged…; it is skipped unless PRIVILEGED_TESTS=1, and it fails,
// rather than skips, when that is set but the process lacks CAP_NET_ADMIN.
func Privileged(t testing.TB) {
	t.Helper()
	if !strings.HasPrefix(t.Name(), "TestPrivileged") && !strings.HasPrefix(t.Name(), "BenchmarkPrivileged") {
		t.Fatalf("%s calls testutil.Privileged but is not named TestPrivileged…", t.Name())
	}
	if os.Getenv("PRIVILEGED_TESTS") != "1" {
		t.Skip("needs root: run as root with PRIVILEGED_TESTS=1")
	}
	if !HasNetAdmin() {
		t.Fatal("PRIVILEGED_TESTS=1 but this process lacks CAP_NET_ADMIN")
	}
}

// HasNetAdmin reports whether the effective capability set holds
// CAP_NET_ADMIN.
func HasNetAdmin() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		const capNetAdmin = 12
		return err == nil && caps&(1<<capNetAdmin) != 0
	}
	return false
}

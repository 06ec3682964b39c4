package testutil

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Rerun runs the calling test again, alone, in a new process of the test
// binary with marker=1 in its environment (and env), started through the
// command prefix (say ip netns exec NS; none: directly), and reports
// whether the caller is that copy (and should go on) rather than the
// original (which should return). The original passes, fails or skips as
// the copy did; the copy has 4 minutes.
func Rerun(t *testing.T, marker string, prefix []string, env ...string) bool {
	t.Helper()
	if os.Getenv(marker) == "1" {
		return true
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	args := append(append([]string{}, prefix...), os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), marker+"=1"), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("in a process of its own (%s):\n%s", strings.Join(args[:len(prefix)+1], " "), out)
	switch {
	case err != nil:
		t.Fatalf("%s in a process of its own: %v", t.Name(), err)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skip("skipped in a process of its own")
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("%s did not pass in a process of its own", t.Name())
	}
	return false
}

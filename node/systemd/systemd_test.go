package systemd

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen makes a notify socket as systemd would and returns what
// arrives on it.
func listen(t *testing.T, name string) <-chan string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got := make(chan string, 10)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

func receive(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("nothing arrived on the notify socket")
	}
	return ""
}

func TestNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	got := listen(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := FromEnv()
	if n == nil {
		t.Fatal("FromEnv with NOTIFY_SOCKET set = nil")
	}
	if err := n.Notify(Ready, Status("ready:\nall good")); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, got); s != "READY=1\nSTATUS=ready: all good" {
		t.Errorf("received %q", s)
	}
	if d := n.WatchdogInterval(); d != 1500*time.Millisecond {
		t.Errorf("WatchdogInterval = %s; want half of WATCHDOG_USEC", d)
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := "calico-test-" + strconv.Itoa(os.Getpid())
	got := listen(t, "@"+name)
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	if err := FromEnv().Notify(Watchdog); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, got); s != Watchdog {
		t.Errorf("received %q", s)
	}
}

func TestNoSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET = %+v", n)
	}
	if err := n.Notify(Ready); err != nil || n.WatchdogInterval() != 0 {
		t.Errorf("a nil Notifier: Notify = %v, WatchdogInterval = %s", err, n.WatchdogInterval())
	}
}

func TestWatchdogForAnotherProcess(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "notify"))
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d := FromEnv().WatchdogInterval(); d != 0 {
		t.Errorf("WatchdogInterval with another process's WATCHDOG_PID = %s; want 0", d)
	}
	t.Setenv("WATCHDOG_USEC", "nonsense")
	t.Setenv("WATCHDOG_PID", "")
	if d := FromEnv().WatchdogInterval(); d != 0 {
		t.Errorf("WatchdogInterval with a bad WATCHDOG_USEC = %s; want 0", d)
	}
}

func TestNotifyNoListener(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody"))
	if err := FromEnv().Notify(Ready); err == nil {
		t.Error("Notify to a socket nobody listens on succeeded")
	}
}

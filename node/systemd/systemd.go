// Package systemd speaks systemd's service notification protocol
// (sd_notify(3)) for a node run by a unit of Type=notify: READY=1,
// STATUS=…, STOPPING=1 and the watchdog's WATCHDOG=1. Where systemd did
// not start the process (no NOTIFY_SOCKET) it says nothing.
package systemd

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The states a node sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Status is a STATUS= line: what the service is doing, in words, for
// `systemctl status`.
func Status(s string) string { return "STATUS=" + strings.ReplaceAll(s, "\n", " ") }

// Notifier sends notifications to the service manager's socket.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// FromEnv is the notifier systemd asked for through the environment
// (NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID), or nil when there is
// no socket to notify.
func FromEnv() *Notifier {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return nil
	}
	if sock[0] == '@' { // an abstract socket
		sock = "\x00" + sock[1:]
	}
	n := &Notifier{addr: &net.UnixAddr{Name: sock, Net: "unixgram"}}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	pid := os.Getenv("WATCHDOG_PID")
	if err == nil && usec > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(usec) * time.Microsecond
	}
	return n
}

// Notify sends one datagram holding states (joined by newlines).
func (n *Notifier) Notify(states ...string) error {
	if n == nil {
		return nil
	}
	if len(states) == 0 {
		return errors.New("nothing to notify")
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = c.Write([]byte(strings.Join(states, "\n")))
	return err
}

// WatchdogInterval is how often to send WATCHDOG=1: half the watchdog's
// timeout (as sd_watchdog_enabled(3) advises), or 0 when systemd keeps
// no watchdog on this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}

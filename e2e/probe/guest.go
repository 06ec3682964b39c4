package main

// The VM tests' subcommands:
//
//	probe tapbridge TAP HOSTNS GUESTNS WIRE
//	                            the stand-in for a VM: open tap TAP in network namespace
//	                            HOSTNS (as QEMU does; it comes up with a carrier) and copy
//	                            frames between it and interface WIRE of namespace GUESTNS
//	                            (a packet socket), until killed; print "ready", then
//	                            "<unix ns> <dir> DHCP<type>" for each DHCPv4 frame (dir
//	                            in: to the guest)
//	probe dhcpsniff NS IFACE    print "<unix ns> <dir> DHCP<type>" for each DHCPv4 frame
//	                            through IFACE of namespace NS (dir in: sent by the host)
//	probe udpsend ADDR:PORT     send a datagram every 5 ms until killed
//	probe udprecv PORT          print the Unix time in ns when the first datagram arrives

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enterNetNS moves the calling (locked) thread into a named network
// namespace.
func enterNetNS(name string) {
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
	}
	if err != nil {
		die("entering network namespace %s: %v", name, err)
	}
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "probe: "+format+"\n", args...)
	os.Exit(1)
}

// openTap opens (attaches to) tap name, as QEMU's -netdev tap does:
// each frame comes and goes with a virtio-net header, which carries
// what the packet socket's frames need of the kernel (a checksum left
// to fill, segmentation offload).
func openTap(name string) *os.File {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		die("opening /dev/net/tun: %v", err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	binary.NativeEndian.PutUint16(req[unix.IFNAMSIZ:], unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		die("attaching to tap %s: %v", name, errno)
	}
	return f
}

func tapBridge(tap, hostNS, guestNS, wire string) {
	runtime.LockOSThread()
	enterNetNS(hostNS)
	t := openTap(tap)
	enterNetNS(guestNS)
	w, err := net.InterfaceByName(wire)
	if err != nil {
		die("%s: %v", wire, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}
	if err == nil { // frames with the virtio-net header, as the tap's
		err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1)
	}
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: w.Index})
	}
	if err != nil {
		die("packet socket on %s: %v", wire, err)
	}
	fmt.Println("ready")
	go func() { // host to guest
		buf := make([]byte, 65536)
		for {
			n, err := t.Read(buf)
			if err != nil {
				die("reading tap %s: %v", tap, err)
			}
			logDHCP("in", buf[:n])
			unix.Sendto(fd, buf[:n], 0, &unix.SockaddrLinklayer{Ifindex: w.Index})
		}
	}()
	buf := make([]byte, 65536)
	for { // guest to host
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			die("reading %s: %v", wire, err)
		}
		logDHCP("out", buf[:n])
		t.Write(buf[:n])
	}
}

// dhcpSniff prints the DHCPv4 frames through an interface, both ways.
func dhcpSniff(ns, iface string) {
	runtime.LockOSThread()
	enterNetNS(ns)
	i, err := net.InterfaceByName(iface)
	if err != nil {
		die("%s: %v", iface, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: i.Index})
	}
	if err != nil {
		die("packet socket on %s: %v", iface, err)
	}
	fmt.Println("ready")
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(fd, buf[vnetHdrLen:], 0)
		if err != nil {
			die("reading %s: %v", iface, err)
		}
		dir := "out" // from the guest
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			dir = "in"
		}
		logDHCP(dir, buf[:vnetHdrLen+n])
	}
}

// vnetHdrLen is the virtio-net header before each frame.
const vnetHdrLen = 10

// logDHCP prints the time of a DHCPv4 frame and its message type.
func logDHCP(dir string, f []byte) {
	if len(f) < vnetHdrLen {
		return
	}
	f = f[vnetHdrLen:]
	if len(f) < 14+20+8+240 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 || f[14+9] != 17 {
		return
	}
	ihl := int(f[14]&0x0f) * 4
	udp := f[14+ihl:]
	if len(udp) < 8+240 {
		return
	}
	if port := binary.BigEndian.Uint16(udp[2:4]); port != 67 && port != 68 {
		return
	}
	// Options after the 236-byte header and the magic cookie.
	opts := udp[8+240:]
	for len(opts) >= 2 && opts[0] != 255 {
		if opts[0] == 0 {
			opts = opts[1:]
			continue
		}
		if opts[0] == 53 && opts[1] == 1 && len(opts) >= 3 {
			fmt.Printf("%d %s DHCP%d\n", time.Now().UnixNano(), dir, opts[2])
			return
		}
		if len(opts) < 2+int(opts[1]) {
			return
		}
		opts = opts[2+int(opts[1]):]
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func udpSend(addr string) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		die("%v", err)
	}
	for i := 0; ; i++ {
		c.Write([]byte(strconv.Itoa(i)))
		time.Sleep(5 * time.Millisecond)
	}
}

func udpRecv(port string) {
	c, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		die("%v", err)
	}
	buf := make([]byte, 64)
	if _, _, err := c.ReadFrom(buf); err != nil {
		die("%v", err)
	}
	fmt.Println(time.Now().UnixNano())
}

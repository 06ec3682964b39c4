#!/bin/sh
# lab.sh builds a fleet of hosts out of network namespaces on this machine
# and runs calico nodes in them. It never touches the root namespace's
# network: the lab has no route out.
#
#   lab.sh up [HOSTS] [RACKS]        make the fabric and HOSTS hosts (default 1, 1 rack)
#   lab.sh start HOST [ARGS...]      start `calico up` on HOST (host1, host2, …) in the background
#   lab.sh stop HOST                 stop HOST's node (SIGTERM; its dataplane stays)
#   lab.sh kill HOST                 kill -9 HOST's node
#   lab.sh calico HOST ARGS...       run the calico CLI against HOST's node
#   lab.sh exec HOST CMD...          run a command in HOST's network namespace
#   lab.sh addr HOST [6]             print HOST's address
#   lab.sh down                      kill every node (at once) and remove the whole lab
#
# Hosts are namespaces calico-lab-hostN with eth0 on a bridge (one per rack)
# in the namespace calico-lab-fabric. Host N of rack R has 172.31.R.(10+N)/24
# and fd00:31:R::(10+N)/64 and a default route to the rack's gateway, .1 in
# the fabric, which forwards nothing. State lives under $CALICO_LAB_DIR
# (default /tmp/calico-lab): each host's data dir, log, pid, config
# file (HOST.yaml, which `calico up` reads instead of /etc/calico) and
# the time its node was last launched (HOST.launched, for benchmarks).
# CALICO_LAB_NAME (default calico-lab) prefixes the namespaces' names.
# CALICO_LAB_TMPFS=SIZE (say 384m) gives every host's data dir a tmpfs of
# that size, a disk that can be filled for real; `down` unmounts them.
# Nodes run in the machine's mount namespace and serve no Docker plugins
# (the machine's /run/docker/plugins is not the lab's), unless a test
# gives a host a mount namespace of its own: HOST.mntns then holds its
# path (/proc/PID/ns/mnt), and the node runs there with its plugins.
set -eu

LAB_DIR=${CALICO_LAB_DIR:-/tmp/calico-lab}
CALICO=${CALICO:-$(cd "$(dirname "$0")/.." && pwd)/calico}
# Namespaces are named $LAB-…; another name lets a second lab run beside.
LAB=${CALICO_LAB_NAME:-calico-lab}
FABRIC=$LAB-fabric

die() { echo "lab.sh: $*" >&2; exit 1; }
hostns() { echo "$LAB-$1"; }
# running PID: a node this script started before has not exited. A
# zombie has: it holds no memory, file, socket or lock, only its exit
# status until init reaps the orphan (a second or more later on some
# machines). A state that cannot be read counts as running. Not for a
# process that may be starting: while a thread other than the leader
# execs (the command line execs the node), the leader may look a zombie.
running() {
	kill -0 "$1" 2>/dev/null || return 1
	st=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || true
	[ "$st" != Z ]
}
hostnum() { echo "$1" | sed -n 's/^host\([0-9][0-9]*\)$/\1/p'; }
rack_of() { cat "$LAB_DIR/$1.rack" 2>/dev/null || die "no lab host $1 (run lab.sh up)"; }

addr() { # HOST [6]
	n=$(hostnum "$1"); r=$(rack_of "$1")
	if [ "${2:-4}" = 6 ]; then echo "fd00:31:$r::$((10 + n))"; else echo "172.31.$r.$((10 + n))"; fi
}

up() {
	hosts=${1:-1}; racks=${2:-1}
	down
	mkdir -p "$LAB_DIR"
	ip netns add $FABRIC
	ip -n $FABRIC link set lo up
	ip netns exec $FABRIC sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv6/conf/all/forwarding'
	r=1
	while [ $r -le "$racks" ]; do
		ip -n $FABRIC link add rack$r type bridge
		ip -n $FABRIC addr add 172.31.$r.1/24 dev rack$r
		ip -n $FABRIC addr add fd00:31:$r::1/64 dev rack$r nodad
		ip -n $FABRIC link set rack$r up
		r=$((r + 1))
	done
	n=1
	while [ $n -le "$hosts" ]; do
		h=host$n
		r=$(( (n - 1) * racks / hosts + 1 ))
		echo $r > "$LAB_DIR/$h.rack"
		if [ -n "${CALICO_LAB_TMPFS:-}" ]; then
			mkdir -p "$LAB_DIR/$h"
			mount -t tmpfs -o size="$CALICO_LAB_TMPFS",mode=0700 "$LAB-$h-data" "$LAB_DIR/$h"
		fi
		ns=$(hostns $h)
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip link add "lab-$h" netns $FABRIC type veth peer name eth0 netns "$ns"
		ip -n $FABRIC link set "lab-$h" master rack$r up
		ip -n "$ns" addr add "$(addr $h)/24" dev eth0
		ip -n "$ns" addr add "$(addr $h 6)/64" dev eth0 nodad
		ip -n "$ns" link set eth0 up
		ip -n "$ns" route add default via 172.31.$r.1
		ip -n "$ns" -6 route add default via fd00:31:$r::1
		n=$((n + 1))
	done
	echo "lab: $hosts host(s) in $racks rack(s); state in $LAB_DIR"
}

start() { # HOST [ARGS...]
	h=$1; shift
	ns=$(hostns "$h"); rack_of "$h" >/dev/null
	[ -x "$CALICO" ] || die "no calico binary at $CALICO (run make)"
	if [ -f "$LAB_DIR/$h.pid" ] && running "$(cat "$LAB_DIR/$h.pid")"; then
		die "$h is already running"
	fi
	# Each host reads its own config file (empty unless a test writes
	# one), never the machine's /etc/calico/config.yaml.
	[ -f "$LAB_DIR/$h.yaml" ] || : >"$LAB_DIR/$h.yaml"
	# nsenter, not `ip netns exec`: the node must share this mount
	# namespace so the workload namespaces it makes are visible here
	# (a host with a mount namespace of its own, for Docker, makes none).
	set -- --net=/run/netns/"$ns" "$CALICO" up --data-dir "$LAB_DIR/$h" --name "$h" --ip "$(addr "$h")/24" --ip6 "$(addr "$h" 6)/64" "$@"
	# When the node's process is launched (Unix nanoseconds), for
	# benchmarks that time a start from there rather than from this
	# script's own start (its subshells take tens of milliseconds).
	date +%s%N >"$LAB_DIR/$h.launched"
	if [ -f "$LAB_DIR/$h.mntns" ]; then
		CALICO_CONFIG_FILE="$LAB_DIR/$h.yaml" nsenter --mount="$(cat "$LAB_DIR/$h.mntns")" "$@" >>"$LAB_DIR/$h.log" 2>&1 &
	else
		CALICO_CONFIG_FILE="$LAB_DIR/$h.yaml" CALICO_DOCKER_PLUGINS=false nsenter "$@" >>"$LAB_DIR/$h.log" 2>&1 &
	fi
	pid=$!
	echo $pid > "$LAB_DIR/$h.pid"
	# Until the node's API socket is there, the wait runs nothing but
	# sleep: each `calico status` is a process start, which a node's start
	# would otherwise share its cores with (benchmarks time that start).
	i=0
	until [ -S "$LAB_DIR/$h/calico.sock" ] && CALICO_DATA_DIR="$LAB_DIR/$h" "$CALICO" status >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then # our child: the shell reaps it
			tail -20 "$LAB_DIR/$h.log" >&2
			die "$h's node exited; its log is $LAB_DIR/$h.log"
		fi
		i=$((i + 1))
		[ $i -lt 600 ] || die "$h's node is not ready after 60s; its log is $LAB_DIR/$h.log"
		sleep 0.1
	done
	echo "lab: $h is up ($(addr "$h"), log $LAB_DIR/$h.log)"
}

stop() { # HOST [SIGNAL]
	pidf="$LAB_DIR/$1.pid"
	[ -f "$pidf" ] || return 0
	pid=$(cat "$pidf")
	kill -"${2:-TERM}" "$pid" 2>/dev/null || true
	i=0
	while running "$pid" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidf"
}

down() {
	[ -d "$LAB_DIR" ] || { ip netns del $FABRIC 2>/dev/null || true; return 0; }
	# The nodes go at once (SIGKILL to all, then each is waited for): the
	# lab goes with them, so a graceful stop would keep nothing. (All
	# stopped gracefully at once took 1.7-7.4 s for five hosts, one after
	# another about 7-12 s.)
	for pidf in "$LAB_DIR"/*.pid; do
		[ -f "$pidf" ] && kill -KILL "$(cat "$pidf")" 2>/dev/null || true
	done
	for pidf in "$LAB_DIR"/*.pid; do
		[ -f "$pidf" ] && stop "$(basename "$pidf" .pid)" KILL
	done
	# The workload namespaces the nodes made (each node records them).
	for f in "$LAB_DIR"/*/netns/*; do
		[ -f "$f" ] && ip netns del "$(basename "$f")" 2>/dev/null || true
	done
	for ns in $(ip netns list | awk '{print $1}' | grep "^$LAB-" || true); do
		ip netns del "$ns"
	done
	# The hosts' tmpfs data dirs (CALICO_LAB_TMPFS), innermost first.
	awk -v d="$LAB_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	rm -rf "$LAB_DIR"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
up) up "$@" ;;
start) [ $# -ge 1 ] || die "start HOST [ARGS...]"; start "$@" ;;
stop) [ $# -eq 1 ] || die "stop HOST"; stop "$1" ;;
kill) [ $# -eq 1 ] || die "kill HOST"; stop "$1" KILL ;;
calico) [ $# -ge 1 ] || die "calico HOST ARGS..."; h=$1; shift; rack_of "$h" >/dev/null
	CALICO_DATA_DIR="$LAB_DIR/$h" exec nsenter --net=/run/netns/"$(hostns "$h")" "$CALICO" "$@" ;;
exec) [ $# -ge 2 ] || die "exec HOST CMD..."; h=$1; shift; rack_of "$h" >/dev/null
	exec nsenter --net=/run/netns/"$(hostns "$h")" "$@" ;;
addr) [ $# -ge 1 ] || die "addr HOST [6]"; addr "$@" ;;
down) down ;;
*) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
esac

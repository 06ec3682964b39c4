#!/bin/sh
# install.sh installs calico on this host as a systemd service, or upgrades
# it in place when run again.
#
#   curl -sfL https://github.com/calico-net/calico/releases/latest/download/install.sh | sh -
#   curl -sfL …/install.sh | CALICO_JOIN=172.31.1.11 CALICO_TOKEN=K1… sh -
#   curl -sfL …/install.sh | sh -s - --pool 10.65.0.0/16 --pool fd00:65::/48
#
# Arguments after `sh -s -` are `calico up` flags. They and CALICO_JOIN /
# CALICO_TOKEN are written to /etc/calico/config.yaml (mode 0600; keys are
# the flag names without --, repeatable flags are lists). Only the keys
# given are written: the file's other keys are kept, so running the script
# again with no arguments upgrades the binary and leaves the config alone.
#
# Environment:
#   CALICO_JOIN, CALICO_TOKEN     join this member's cluster with this token
#   CALICO_VERSION                release to install (default: the latest)
#   CALICO_DOWNLOAD_URL           where calico-linux-<arch> and sha256sum.txt
#                                 are: an http(s):// or file:// URL or a local
#                                 directory (default: the project's release
#                                 for CALICO_VERSION)
#   INSTALL_CALICO_BIN_DIR        default /usr/local/bin
#   INSTALL_CALICO_SYSTEMD_DIR    default /etc/systemd/system
#   INSTALL_CALICO_SKIP_DOWNLOAD  true: use the calico already in the bin dir
#   INSTALL_CALICO_SKIP_ENABLE    true: neither enable nor start the service
#   INSTALL_CALICO_SKIP_START     true: enable the service but do not start it
#
# The whole script is one function called on its last line, so a truncated
# download runs nothing.

RELEASES=https://github.com/calico-net/calico/releases

info() { echo "[INFO]  $*"; }
warn() { echo "[WARN]  $*" >&2; }
fatal() {
	echo "[ERROR] $*" >&2
	exit 1
}

# quote prints $1 as one single-quoted shell word.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# sha256 prints the SHA-256 of file $1, or nothing when it does not exist.
sha256() {
	[ -f "$1" ] || return 0
	set -- "$(sha256sum "$1")"
	echo "${1%% *}"
}

check_system() {
	[ "$(uname -s)" = Linux ] || fatal "calico runs on Linux only (this is $(uname -s))"
	[ "$(id -u)" = 0 ] || fatal "install.sh must run as root (curl -sfL … | sudo sh -)"
	case $(uname -m) in
	x86_64 | amd64) ARCH=amd64 ;;
	aarch64 | arm64) ARCH=arm64 ;;
	*) fatal "unsupported architecture $(uname -m): calico is built for x86_64 (amd64) and aarch64 (arm64)" ;;
	esac
	has_nftables || fatal "this kernel has no nftables (nf_tables): calico's firewall needs it"
}

# has_nftables says whether the kernel has nf_tables. With nft installed it
# asks the kernel (which loads the module on demand); without, it looks for
# the loaded or built-in module (/sys/module, /proc/kallsyms), an installed
# module file, or the kernel's config.
has_nftables() {
	if command -v nft >/dev/null 2>&1; then
		nft list tables >/dev/null 2>&1
		return
	fi
	[ -d /sys/module/nf_tables ] && return 0
	grep -qE '\[nf_tables\]$| nf_tables_' /proc/kallsyms 2>/dev/null && return 0
	for f in /lib/modules/"$(uname -r)"/modules.builtin /lib/modules/"$(uname -r)"/modules.dep; do
		grep -q '/nf_tables\.ko' "$f" 2>/dev/null && return 0
	done
	if [ -r /proc/config.gz ] && command -v zcat >/dev/null 2>&1; then
		zcat /proc/config.gz | grep -q '^CONFIG_NF_TABLES=[ym]' && return 0
	fi
	return 1
}

# --- what goes into /etc/calico/config.yaml ---

# add_setting records one flag given to the installer: key, tab, value (a
# flag given without a value records the value true).
add_setting() {
	case $1 in
	'' | -* | *[!a-z0-9-]*) fatal "--$1 is not a calico up flag name" ;;
	config) fatal "--config is not a setting: install.sh writes $CONFIG_FILE" ;;
	esac
	case $2 in
	*'
'*) fatal "--$1: a value cannot span lines" ;;
	esac
	printf '%s\t%s\n' "$1" "$2" >>"$TMP/settings"
}

# takes_value says whether calico up flag $1 needs a value; unknown flags
# take one unless the next argument is another flag.
takes_value() {
	case $1 in
	data-dir | name | ip | ip6 | pool | as | join | token | etcd-endpoints | etcd-ca | etcd-cert | etcd-key | voter-replace-after | log-level | docker-socket) return 0 ;;
	esac
	return 1
}

parse_args() {
	: >"$TMP/settings"
	[ -n "${CALICO_JOIN:-}" ] && add_setting join "$CALICO_JOIN"
	[ -n "${CALICO_TOKEN:-}" ] && add_setting token "$CALICO_TOKEN"
	while [ $# -gt 0 ]; do
		case $1 in
		--*=*)
			key=${1%%=*}
			add_setting "${key#--}" "${1#*=}"
			shift
			;;
		--?*)
			key=${1#--}
			shift
			if takes_value "$key"; then
				[ $# -gt 0 ] || fatal "--$key needs a value"
				add_setting "$key" "$1"
				shift
			elif [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
				add_setting "$key" "$1"
				shift
			else
				add_setting "$key" true
			fi
			;;
		*) fatal "unexpected argument '$1': the arguments after 'sh -s -' are calico up flags, such as --pool 10.65.0.0/16" ;;
		esac
	done
}

# render_settings turns the recorded settings into YAML lines, one per key
# in the order first given: repeatable flags become lists, otherwise the
# last value wins. A value is written plain when YAML would read it back as
# the same string, else double-quoted.
render_settings() {
	awk -F '\t' '
	function scalar(v) {
		if (v == "true" || v == "false") return v
		if (v ~ /^[A-Za-z0-9\/][A-Za-z0-9._\/-]*$/ &&
		    v !~ /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/ &&
		    v !~ /^[0-9][0-9_]*$/ && v !~ /^0[xXoObB]/ && v !~ /^[0-9][0-9][0-9][0-9]-/ &&
		    tolower(v) !~ /^(y|n|yes|no|on|off|null)$/)
			return v
		gsub(/\\/, "\\\\", v)
		gsub(/"/, "\\\"", v)
		return "\"" v "\""
	}
	{
		k = $1; v = substr($0, length(k) + 2)
		seen = k in val
		if (!seen) order[++n] = k
		if (k == "pool" || k == "etcd-endpoints") {
			val[k] = seen ? val[k] ", " scalar(v) : scalar(v)
			list[k] = 1
		} else {
			val[k] = scalar(v)
		}
	}
	END {
		for (i = 1; i <= n; i++) {
			k = order[i]
			if (k in list) print k ": [" val[k] "]"
			else print k ": " val[k]
		}
	}' "$TMP/settings"
}

# merge_config prints config file $1 with the top-level keys of file $2
# replaced (a key's block is its line and the indented or "- " lines after
# it) and the keys it lacks appended. Everything else is kept as it was.
merge_config() {
	awk -v newf="$2" '
	function topkey(s, k) {
		if (s !~ /^[A-Za-z0-9_.-]+[ \t]*:/) return ""
		k = s; sub(/[ \t]*:.*/, "", k); return k
	}
	BEGIN {
		while ((getline line < newf) > 0) {
			k = topkey(line); val[k] = line; order[++n] = k
		}
	}
	skip && /^([ \t]|-)/ { next }
	{ skip = 0; k = topkey($0) }
	k != "" && (k in val) {
		if (!(k in done)) print val[k]
		done[k] = 1; skip = 1; next
	}
	{ print }
	END {
		for (i = 1; i <= n; i++) if (!(order[i] in done)) print val[order[i]]
	}' "$1"
}

# config_value prints the value of top-level key $1 in the config file,
# unquoted, or nothing.
config_value() {
	[ -f "$CONFIG_FILE" ] || return 0
	sed -n "s/^$1[ 	]*:[ 	]*//p" "$CONFIG_FILE" | tail -n 1 | sed 's/[ 	]*#.*//; s/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/'
}

# prepare_config writes the config file to be installed to $TMP/config.yaml
# (or leaves it absent when there is nothing to write).
prepare_config() {
	render_settings >"$TMP/new"
	if [ -f "$CONFIG_FILE" ]; then
		merge_config "$CONFIG_FILE" "$TMP/new" >"$TMP/config.yaml"
	elif [ -s "$TMP/new" ]; then
		{
			echo "# calico up reads this file: its keys are calico up's flags without the --."
			echo "# install.sh sets only the keys it is given and keeps the others."
			cat "$TMP/new"
		} >"$TMP/config.yaml"
	fi
	if [ -f "$TMP/config.yaml" ] && grep -q '^join[ 	]*:' "$TMP/config.yaml" &&
		! grep -q '^token[ 	]*:' "$TMP/config.yaml" &&
		! grep -q '^[ 	]*CALICO_TOKEN=' /etc/default/calico 2>/dev/null; then
		fatal "CALICO_JOIN needs CALICO_TOKEN (calico token on a member of the cluster prints it)"
	fi
	return 0
}

# --- the binary ---

# release_base sets BASE, where the release's files are: a URL or a
# local directory.
release_base() {
	if [ -n "${CALICO_DOWNLOAD_URL:-}" ]; then
		BASE=${CALICO_DOWNLOAD_URL%/}
	elif [ -n "${CALICO_VERSION:-}" ]; then
		BASE=$RELEASES/download/$CALICO_VERSION
	else
		BASE=$RELEASES/latest/download
	fi
	case $BASE in
	file://*) BASE=${BASE#file://} ;;
	esac
}

choose_downloader() {
	case $BASE in
	http://* | https://*)
		if command -v curl >/dev/null 2>&1; then
			DOWNLOADER=curl
		elif command -v wget >/dev/null 2>&1; then
			DOWNLOADER=wget
		else
			fatal "cannot download from $BASE: install curl or wget"
		fi
		;;
	*) DOWNLOADER=copy ;;
	esac
}

# fetch copies $BASE/$1 to file $2.
fetch() {
	case $DOWNLOADER in
	curl)
		rc=0
		curl -sfL --connect-timeout 20 -o "$2" "$BASE/$1" || rc=$?
		case $rc in
		0) return 0 ;;
		6) why="cannot resolve the host" ;;
		7) why="cannot connect" ;;
		22) why="the server answered with an HTTP error" ;;
		28) why="timed out" ;;
		35 | 60) why="TLS failed" ;;
		*) why="curl exit code $rc" ;;
		esac
		fatal "cannot download $BASE/$1: $why"
		;;
	wget) wget -qO "$2" "$BASE/$1" || fatal "cannot download $BASE/$1 (wget failed)" ;;
	copy) cp "$BASE/$1" "$2" 2>/dev/null || fatal "cannot read $BASE/$1" ;;
	esac
}

# download_binary leaves a verified binary in $TMP/calico, or sets
# BIN_CURRENT when the installed one is already the one of the release.
download_binary() {
	choose_downloader
	file=calico-linux-$ARCH
	fetch sha256sum.txt "$TMP/sha256sum.txt"
	want=$(awk -v f="$file" '$2 == f || $2 == "*" f { print $1; exit }' "$TMP/sha256sum.txt")
	[ -n "$want" ] || fatal "$BASE/sha256sum.txt has no checksum for $file"
	if [ "$(sha256 "$BIN")" = "$want" ]; then
		BIN_CURRENT=true
		info "$BIN is already the binary of $BASE"
		return
	fi
	info "downloading $BASE/$file"
	fetch "$file" "$TMP/calico"
	got=$(sha256 "$TMP/calico")
	[ "$got" = "$want" ] || fatal "checksum mismatch for $BASE/$file: sha256 $got, sha256sum.txt says $want"
}

install_binary() {
	if [ "${INSTALL_CALICO_SKIP_DOWNLOAD:-}" = true ]; then
		[ -x "$BIN" ] || fatal "INSTALL_CALICO_SKIP_DOWNLOAD=true but there is no executable $BIN"
		info "using the calico already in $BIN"
		return
	fi
	[ "$BIN_CURRENT" = true ] && return
	mkdir -p "$BIN_DIR"
	# A rename replaces the binary even while the node runs it.
	cp "$TMP/calico" "$BIN_DIR/.calico.new"
	chmod 0755 "$BIN_DIR/.calico.new"
	mv -f "$BIN_DIR/.calico.new" "$BIN"
	info "installed $BIN ($("$BIN" version 2>/dev/null || echo "version unknown"))"
}

# --- files ---

# write_file installs $TMP/$1 as file $2 with mode $3, only if it differs.
write_file() {
	if [ -f "$2" ] && cmp -s "$TMP/$1" "$2"; then
		chmod "$3" "$2"
		return
	fi
	mkdir -p "$(dirname "$2")"
	(umask 077 && cp "$TMP/$1" "$2.tmp")
	chmod "$3" "$2.tmp"
	mv -f "$2.tmp" "$2"
	info "wrote $2"
}

# unit prints the systemd unit; scripts/calico.service is its text for
# the default bin dir.
unit() {
	cat <<EOF
# calico node: routed networking for this host. Written by install.sh,
# which rewrites it when run again: put local changes in a drop-in
# (systemctl edit calico). Settings go in /etc/calico/config.yaml.
[Unit]
Description=calico node: routed networking for this host
Documentation=https://github.com/calico-net/calico
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
EnvironmentFile=-/etc/default/calico
ExecStart=$BIN up
Restart=always
RestartSec=5s
# Stopping the node leaves the dataplane in place: workloads keep working.
KillMode=process
WatchdogSec=30s
# A joining host may wait for the cluster's other members.
TimeoutStartSec=15min
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
EOF
}

write_uninstall() {
	{
		echo '#!/bin/sh'
		echo '# calico-uninstall.sh: written by install.sh. Removes calico from this host.'
		echo "BIN_DIR=$(quote "$BIN_DIR")"
		echo "SYSTEMD_DIR=$(quote "$SYSTEMD_DIR")"
		cat <<'EOF'
CONFIG_DIR=/etc/calico
UNIT=calico.service
usage() {
	cat <<USAGE
usage: calico-uninstall.sh [--leave] [--purge]

Stops and disables the calico service and removes what calico put on this
host: its nftables table (inet calico), its routes (protocol 80), its cali…
interfaces, the network namespaces it made for workloads, the unit, the
binary, the config (/etc/calico/config.yaml and config.yaml.d) and this
script. Nothing else is touched.

  --leave  leave the cluster first (calico leave --force: removes this
           host's workloads, hands over its etcd seat, deletes its node)
  --purge  also delete the data dir (cluster identity, certificates, etcd)
USAGE
}

info() { echo "[INFO]  $*"; }
warn() {
	echo "[WARN]  $*" >&2
	FAILED=true
}
fatal() {
	echo "[ERROR] $*" >&2
	exit 1
}

# data_dir prints the node's data dir: the last data-dir in the config
# files, else the default.
data_dir() {
	d=
	for f in "$CONFIG_DIR/config.yaml" "$CONFIG_DIR"/config.yaml.d/*.yaml; do
		[ -f "$f" ] || continue
		v=$(sed -n 's/^data-dir[ 	]*:[ 	]*//p' "$f" | tail -n 1 | sed 's/[ 	]*#.*//; s/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/')
		[ -n "$v" ] && d=$v
	done
	echo "${d:-/var/lib/calico}"
}

main() {
	set -u
	LEAVE=false PURGE=false FAILED=false
	for a in "$@"; do
		case $a in
		--leave) LEAVE=true ;;
		--purge) PURGE=true ;;
		-h | --help)
			usage
			exit 0
			;;
		*) fatal "unknown argument $a (calico-uninstall.sh [--leave] [--purge])" ;;
		esac
	done
	[ "$(id -u)" = 0 ] || fatal "calico-uninstall.sh must run as root"
	BIN=$BIN_DIR/calico
	DATA_DIR=$(data_dir)
	SYSTEMD=false
	[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && SYSTEMD=true

	if [ "$LEAVE" = true ]; then
		info "leaving the cluster"
		"$BIN" leave --force --data-dir "$DATA_DIR" ||
			fatal "calico leave failed (is the node running?): nothing was removed; run without --leave to uninstall anyway"
	fi
	if [ "$SYSTEMD" = true ]; then
		systemctl stop "$UNIT" 2>/dev/null
		systemctl disable "$UNIT" 2>/dev/null
	fi
	if [ -S "$DATA_DIR/calico.sock" ] && [ -x "$BIN" ] && "$BIN" status --data-dir "$DATA_DIR" >/dev/null 2>&1; then
		fatal "a calico node is still running on $DATA_DIR: stop it first"
	fi

	if command -v nft >/dev/null 2>&1; then
		if nft list table inet calico >/dev/null 2>&1; then
			if nft delete table inet calico; then
				info "removed nftables table inet calico"
			else
				warn "could not remove nftables table inet calico"
			fi
		fi
	else
		warn "nft is not installed: cannot check for the nftables table inet calico"
	fi
	if command -v ip >/dev/null 2>&1; then
		if [ -n "$(ip -4 route show table main proto 80 2>/dev/null)$(ip -6 route show table main proto 80 2>/dev/null)" ]; then
			ip -4 route flush table main proto 80
			ip -6 route flush table main proto 80 2>/dev/null
			if [ -n "$(ip -4 route show table main proto 80 2>/dev/null)$(ip -6 route show table main proto 80 2>/dev/null)" ]; then
				warn "could not remove every route of protocol 80"
			else
				info "removed the routes of protocol 80"
			fi
		fi
		for f in "$DATA_DIR"/netns/*; do
			[ -f "$f" ] || continue
			ns=${f##*/}
			case $ns in
			*[!a-z0-9.-]* | .*) continue ;;
			esac
			if [ -e "/run/netns/$ns" ]; then
				if ip netns delete "$ns"; then
					info "removed network namespace $ns"
				else
					warn "could not remove network namespace $ns"
				fi
			fi
			rm -f "$f"
		done
		for l in $(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep '^cali[0-9a-f]\{11\}$'); do
			ip link delete "$l" 2>/dev/null && info "removed interface $l"
		done
	else
		warn "ip (iproute2) is not installed: cannot remove calico's routes, interfaces and namespaces"
	fi

	if [ -f "$SYSTEMD_DIR/$UNIT" ]; then
		rm -f "$SYSTEMD_DIR/$UNIT"
		info "removed $SYSTEMD_DIR/$UNIT"
	fi
	[ "$SYSTEMD" = true ] && systemctl daemon-reload && systemctl reset-failed "$UNIT" 2>/dev/null
	if [ -e "$BIN" ]; then
		rm -f "$BIN" && info "removed $BIN"
	fi
	# The node's binary, which calico up unpacks from $BIN: program, not
	# data. Only its own files (calico- and 16 hex digits, and unfinished
	# .calico-* unpacks), then the directory if that leaves it empty.
	if [ -d "$DATA_DIR/bin" ]; then
		for f in "$DATA_DIR"/bin/calico-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f] "$DATA_DIR"/bin/.calico-*; do
			if [ -f "$f" ]; then rm -f "$f" && info "removed $f"; fi
		done
		rmdir "$DATA_DIR/bin" 2>/dev/null || true
	fi
	rm -rf "$CONFIG_DIR/config.yaml" "$CONFIG_DIR/config.yaml.d"
	rmdir "$CONFIG_DIR" 2>/dev/null
	[ -d "$CONFIG_DIR" ] && info "kept $CONFIG_DIR: it holds files install.sh did not write"
	if [ "$PURGE" = true ]; then
		case $DATA_DIR in
		/ | /usr | /etc | /var | /var/lib | /home | /root | /run | /tmp) warn "not deleting data dir $DATA_DIR" ;;
		*) rm -rf "$DATA_DIR" && info "removed $DATA_DIR" ;;
		esac
	elif [ -d "$DATA_DIR" ]; then
		info "kept the data dir $DATA_DIR (--purge deletes it)"
	fi
	rm -f "$BIN_DIR/calico-uninstall.sh"
	if [ "$FAILED" = true ]; then
		exit 1
	fi
	info "calico is uninstalled"
}

main "$@"
EOF
	} >"$TMP/calico-uninstall.sh"
	write_file calico-uninstall.sh "$BIN_DIR/calico-uninstall.sh" 0755
}

# --- the service ---

# start_service enables and (re)starts the service where systemd runs and
# prints how to start the node where it does not.
start_service() {
	if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null 2>&1; then
		info "systemd is not running here: start the node with '$BIN up' (it reads $CONFIG_FILE)"
		return
	fi
	systemctl daemon-reload
	if [ "${INSTALL_CALICO_SKIP_ENABLE:-}" = true ]; then
		info "INSTALL_CALICO_SKIP_ENABLE=true: not enabling or starting calico.service"
		return
	fi
	systemctl enable calico.service >/dev/null 2>&1 || fatal "systemctl enable calico.service failed"
	if [ "${INSTALL_CALICO_SKIP_START:-}" = true ]; then
		info "INSTALL_CALICO_SKIP_START=true: not starting calico.service (systemctl start calico)"
		return
	fi
	if [ "$CHANGED" = true ] || ! systemctl is-active --quiet calico.service; then
		info "starting calico.service (journalctl -u calico shows its log)"
		systemctl restart calico.service || fatal "calico.service did not start: see systemctl status calico; journalctl -u calico"
	else
		info "calico.service runs and nothing changed: not restarted"
	fi
	print_join
}

# print_join prints, on the host that founded the cluster, how other hosts
# join it. The token goes to a terminal only, never to a log.
print_join() {
	[ -n "$(config_value join)" ] && return
	dir=$(config_value data-dir)
	dir=${dir:-/var/lib/calico}
	ip=$("$BIN" status -o json --data-dir "$dir" 2>/dev/null | sed -n 's/^ *"ipv4": *"\([^"/]*\).*/\1/p' | head -n 1)
	if [ -z "$ip" ]; then
		info "the node is not answering yet: 'calico status' shows it, 'calico token' prints the join token"
		return
	fi
	url=
	[ -n "${CALICO_DOWNLOAD_URL:-}" ] && url="CALICO_DOWNLOAD_URL=$(quote "$CALICO_DOWNLOAD_URL") "
	[ -n "${CALICO_VERSION:-}" ] && url="${url}CALICO_VERSION=$(quote "$CALICO_VERSION") "
	token='<token>'
	if [ -t 1 ] && t=$("$BIN" token --data-dir "$dir" 2>/dev/null); then
		token=$t
		info "other hosts join with:"
	else
		info "other hosts join with (sudo calico token prints the token):"
	fi
	case $BASE in
	http://* | https://*) echo "    curl -sfL $BASE/install.sh | ${url}CALICO_JOIN=$ip CALICO_TOKEN=$token sh -" ;;
	*) echo "    ${url}CALICO_JOIN=$ip CALICO_TOKEN=$token sh $BASE/install.sh" ;;
	esac
}

main() {
	set -eu
	umask 022
	BIN_DIR=${INSTALL_CALICO_BIN_DIR:-/usr/local/bin}
	SYSTEMD_DIR=${INSTALL_CALICO_SYSTEMD_DIR:-/etc/systemd/system}
	BIN=$BIN_DIR/calico
	CONFIG_FILE=/etc/calico/config.yaml
	BIN_CURRENT=false
	release_base

	check_system
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/calico-install.XXXXXX")
	trap 'rm -rf "$TMP"' EXIT
	trap 'exit 130' INT TERM

	parse_args "$@"
	prepare_config
	before="$(sha256 "$BIN") $(sha256 "$SYSTEMD_DIR/calico.service") $(sha256 "$CONFIG_FILE")"
	if [ "${INSTALL_CALICO_SKIP_DOWNLOAD:-}" != true ]; then
		download_binary
	fi
	install_binary
	if [ -f "$TMP/config.yaml" ]; then
		mkdir -p /etc/calico
		write_file config.yaml "$CONFIG_FILE" 0600
	fi
	unit >"$TMP/calico.service"
	write_file calico.service "$SYSTEMD_DIR/calico.service" 0644
	write_uninstall
	after="$(sha256 "$BIN") $(sha256 "$SYSTEMD_DIR/calico.service") $(sha256 "$CONFIG_FILE")"
	CHANGED=false
	if [ "$before" != "$after" ]; then
		CHANGED=true
	else
		info "nothing changed"
	fi
	start_service
	info "calico is installed: $BIN, $SYSTEMD_DIR/calico.service, $BIN_DIR/calico-uninstall.sh"
}

main "$@"

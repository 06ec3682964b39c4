#!/bin/sh
# demo.sh brings up a one-host lab with three workloads in two profiles
# and prints what to try. Tear it down with `scripts/lab.sh down`.
set -eu
cd "$(dirname "$0")/.."
LAB=scripts/lab.sh
[ "$(id -u)" = 0 ] || { echo "demo.sh: needs root (sudo make demo)" >&2; exit 1; }

$LAB up 1
$LAB start host1 --pool 10.65.0.0/16 --pool fd00:65::/48
for w in cw-a1:a cw-a2:a cw-b1:b; do
	name=${w%:*}; profile=${w#*:}
	printf '%s (profile %s): ' "$name" "$profile"
	$LAB calico host1 workload add "$name" --profile "$profile"
done
a2=$($LAB calico host1 workload list -o json | sed -n '/"name": "cw-a2"/,/]/p' | grep -m1 -o '10\.65\.[0-9.]*')
a1=$($LAB calico host1 workload list -o json | sed -n '/"name": "cw-a1"/,/]/p' | grep -m1 -o '10\.65\.[0-9.]*')
cat <<MSG

The lab runs host1 (a network namespace) with a calico node and three
workloads. Try:

  sudo ip netns exec cw-a1 ping -c 2 $a2      # same profile: answers
  sudo ip netns exec cw-b1 ping -c 2 $a1      # other profile: dropped
  sudo scripts/lab.sh calico host1 status
  sudo scripts/lab.sh calico host1 workload list
  sudo scripts/lab.sh calico host1 get ippools -o yaml
  sudo scripts/lab.sh exec host1 ip route

When you are done:  sudo scripts/lab.sh down
MSG

#!/bin/sh
# demo.sh brings up a three-host lab: host1 founds the cluster, host2 and
# host3 join it, and workloads in two profiles run on the hosts. It prints
# what to try. Tear it down with `scripts/lab.sh down`.
set -eu
cd "$(dirname "$0")/.."
LAB=scripts/lab.sh
[ "$(id -u)" = 0 ] || { echo "demo.sh: needs root (sudo make demo)" >&2; exit 1; }

$LAB up 3
$LAB start host1 --pool 10.65.0.0/16 --pool fd00:65::/48
token=$($LAB calico host1 token)
$LAB start host2 --join "$($LAB addr host1)" --token "$token"
$LAB start host3 --join "$($LAB addr host2)" --token "$token"   # any member is a seed
for w in host1:cw-a1:a host1:cw-a2:a host1:cw-b1:b host2:cw-a3:a host3:cw-b2:b; do
	host=${w%%:*}; rest=${w#*:}; name=${rest%:*}; profile=${rest#*:}
	printf '%s on %s (profile %s): ' "$name" "$host" "$profile"
	$LAB calico "$host" workload add "$name" --profile "$profile"
done
# The hosts' BGP sessions come up within seconds, and are made again once
# as host2 and host3 become etcd voters (the voters reflect routes):
# wait for them, so that the pings below answer at once.
printf 'waiting for the BGP sessions between the hosts'
for _ in $(seq 60); do
	down=0
	for h in host1 host2 host3; do
		n=$($LAB calico "$h" status | awk '$3 == "mesh" && $5 != "established"' | wc -l)
		down=$((down + n))
	done
	[ "$down" -gt 0 ] || break
	printf .
	sleep 1
done
if [ "$down" -gt 0 ]; then echo " $down not up yet ($LAB calico host1 status shows them)"; else echo " up"; fi
addr() { $LAB calico "$1" workload list -o json | sed -n "/\"name\": \"$2\"/,/]/p" | grep -m1 -o '10\.65\.[0-9.]*'; }
a1=$(addr host1 cw-a1); a2=$(addr host1 cw-a2); a3=$(addr host2 cw-a3)
cat <<MSG

The lab runs three hosts (network namespaces host1..host3 on one bridge)
that form one cluster: three etcd voters, gossip between them, and
workloads in profiles a and b. Try:

  sudo scripts/lab.sh calico host3 node list       # roles, gossip state, versions
  sudo scripts/lab.sh calico host2 status
  sudo ip netns exec cw-a1 ping -c 2 $a2      # same profile, same host: answers
  sudo ip netns exec cw-a1 ping -c 2 $a3      # same profile, on host2: answers, routed by BGP
  sudo ip netns exec cw-b2 ping -c 2 $a1      # other profile, from host3: dropped
  sudo scripts/lab.sh calico host1 policy trace --from cw-b2 --to cw-a1 --protocol icmp   # why
  sudo scripts/lab.sh calico host1 policy stats    # per-rule counters on host1
  sudo scripts/lab.sh calico host1 bgp routes
  sudo scripts/lab.sh exec host1 ip route     # proto 80: ours
  sudo scripts/lab.sh calico host1 workload list   # every host's workloads
  sudo scripts/lab.sh kill host3; sleep 3; sudo scripts/lab.sh calico host1 node list

When you are done:  sudo scripts/lab.sh down
MSG

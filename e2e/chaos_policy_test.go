package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"time"
)

// The chaos test's policy and the changes a step makes to it. Profiles a
// and b are classic profiles (members reach each other, nothing else
// reaches them); the GlobalNetworkPolicy chaos-deny denies TCP 8081 to
// every workload. Every change keeps the set of denied cells the same:
// chaos-deny's order, selector and ports are written in other words,
// chaos-b-not-a (an explicit deny of b to a, before the profiles) comes
// and goes, and profile a is written with or without an explicit deny of
// b first.

var (
	chaosSelectors = []string{"has(a) || has(b)", "all()"}
	chaosDenyPorts = []string{"[8081]", `["8081:8081"]`}
)

// chaosPolicy is one way of writing the policy.
type chaosPolicy struct {
	order       int
	selector    string
	ports       string
	bNotA       bool // the GlobalNetworkPolicy chaos-b-not-a exists
	profileDeny bool // profile a denies b before it allows a
}

// docs is what `calico apply` writes for p; chaos-b-not-a is deleted
// separately when p has none. chaos-b-not-a ends without a rule for the
// rest: a Pass there would skip chaos-deny (Pass goes on to the
// profiles, past the policies after it).
func (p chaosPolicy) docs() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: chaos-deny}
spec:
  order: %d
  selector: %s
  types: [Ingress]
  ingress:
  - {action: Deny, protocol: TCP, destination: {ports: %s}}
  - {action: Pass}
`, p.order, p.selector, p.ports)
	ingress := `[{action: Allow, source: {selector: has(a)}}]`
	if p.profileDeny {
		ingress = `[{action: Deny, source: {selector: has(b)}}, {action: Allow, source: {selector: has(a)}}]`
	}
	fmt.Fprintf(&b, `---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: a}
spec:
  labelsToApply: {a: ""}
  ingress: %s
  egress: [{action: Allow}]
`, ingress)
	if p.bNotA {
		b.WriteString(chaosBNotA)
	}
	return b.String()
}

const chaosBNotA = `---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: chaos-b-not-a}
spec:
  order: 10
  selector: has(a)
  types: [Ingress]
  ingress:
  - {action: Deny, source: {selector: has(b)}}
`

func (p chaosPolicy) String() string {
	return fmt.Sprintf("chaos-deny order %d selector %q ports %s, chaos-b-not-a %v, profile a denies b first %v",
		p.order, p.selector, p.ports, p.bNotA, p.profileDeny)
}

// applyPolicy writes p from host.
func (c *chaos) applyPolicy(host string, p chaosPolicy) error {
	if out, err := c.calicoStdin(host, p.docs(), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("calico apply on %s of %s: %v: %s", host, p, err, out)
	}
	if !p.bNotA {
		out, err := c.calicoStdin(host, "", "delete", "globalnetworkpolicy", "chaos-b-not-a")
		if err != nil && !strings.Contains(out, "does not exist") && !strings.Contains(out, "not found") {
			return fmt.Errorf("calico delete globalnetworkpolicy chaos-b-not-a on %s: %v: %s", host, err, out)
		}
	}
	return nil
}

// policyChange changes one thing about how the policy is written, from a
// host whose node runs. A write refused during a fault is not a
// violation; the policy stays as it was.
func (c *chaos) policyChange(rng *rand.Rand) string {
	c.mu.Lock()
	p := c.policy
	c.mu.Unlock()
	switch rng.IntN(5) {
	case 0:
		p.order = 150 - p.order // 100 <-> 50
	case 1:
		if p.selector == chaosSelectors[0] {
			p.selector = chaosSelectors[1]
		} else {
			p.selector = chaosSelectors[0]
		}
	case 2:
		if p.ports == chaosDenyPorts[0] {
			p.ports = chaosDenyPorts[1]
		} else {
			p.ports = chaosDenyPorts[0]
		}
	case 3:
		p.bNotA = !p.bNotA
	default:
		p.profileDeny = !p.profileDeny
	}
	up := c.up()
	if len(up) == 0 {
		return "no host up to write from"
	}
	h := up[rng.IntN(len(up))]
	if err := c.applyPolicy(h, p); err != nil {
		return fmt.Sprintf("refused: %v", err)
	}
	c.mu.Lock()
	c.policy = p
	c.mu.Unlock()
	return fmt.Sprintf("wrote from %s: %s", h, p)
}

// calicoStdin runs the CLI on host with stdin and returns its combined
// output.
func (c *chaos) calicoStdin(host, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, labScript, append([]string{"calico", host}, args...)...)
	cmd.Env = append(cmd.Environ(), "CALICO="+calicoBin, "CALICO_LAB_DIR="+c.lab.dir)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within 30s")
	}
	return string(out), err
}

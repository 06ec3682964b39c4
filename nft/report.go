package nft

// Report is what the last successful Apply did and the size of the table
// the kernel holds since, for the node's metrics.
type Report struct {
	// Changed counts what the last Apply changed.
	Changed Stats
	// Source is where that Apply learned what the kernel held: memory,
	// memory+events, read-back or recreate.
	Source string
	// Sized is false when the size of the table is unknown (another
	// process committed at the same time; the next Apply reads it back).
	Sized                         bool
	Chains, Rules, Sets, Elements int
}

// Report describes the last successful Apply and the table it left.
func (a *Applier) Report() Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := Report{Changed: a.last, Source: a.lastSource}
	if a.mem == nil {
		return r
	}
	r.Sized = true
	r.Chains, r.Sets = len(a.mem.Chains), len(a.mem.Sets)
	for _, c := range a.mem.Chains {
		r.Rules += len(c.Rules)
	}
	for _, s := range a.mem.Sets {
		r.Elements += len(s.Elems)
	}
	return r
}

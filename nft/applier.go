package nft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Applier keeps table inet calico in one network namespace equal to the
// rendering of a Ruleset. It owns that table entirely and touches nothing
// else. Its methods may be called from several goroutines; they run one
// at a time.
type Applier struct {
	log     *slog.Logger
	netns   int
	timeout time.Duration

	mu sync.Mutex
	// mem is what the kernel held after our last transaction, valid while
	// the ruleset generation is still memGen; nil when unknown.
	mem    *Table
	memGen uint32
	// mon follows nftables events so that a commit elsewhere in the
	// namespace need not cost a read-back. It is open only while others
	// commit here: from the first commit elsewhere that Apply sees until
	// eventsHold passes without one (eventsUntil), and not after it lost
	// events. A subscriber anywhere on the machine makes the kernel build
	// an event for every object of every transaction in every namespace
	// (its listener check is not per namespace), and most hosts have
	// nobody else committing: a third of a restarted lab host's full load
	// went to events for its neighbours' subscriptions.
	mon         *monitor
	eventsUntil time.Time
	eventsHold  time.Duration
	// conn is the NETLINK_NETFILTER socket Apply reads and commits on,
	// kept open between Applies: the kernel makes the close of a socket
	// wait until the objects its last transaction replaced are freed, an
	// RCU grace period (10-20 ms, longer on a busy host), and a socket per
	// Apply paid that on every change. nil until first used and after a
	// failure (what it still holds to be read is then unknown).
	conn   *netlink.Conn
	owners map[string]policyDir
	// render remembers the last rendering by the versions of policies and
	// sets; verify renders every Ruleset afresh too and compares.
	render renderer
	verify bool
	setID  uint32
	// last and lastSource describe the last successful Apply; failSends
	// makes that many transactions fail before they are sent (tests).
	last       Stats
	lastSource string
	failSends  int
}

// Option configures an Applier.
type Option func(*Applier)

// WithNetNS makes the Applier work in the network namespace the file
// descriptor refers to, instead of the caller's. The caller keeps the
// descriptor open while the Applier is used.
func WithNetNS(fd int) Option { return func(a *Applier) { a.netns = fd } }

// WithTimeout bounds each Apply's and Counters' kernel I/O (30s by
// default; a deadline in the context also applies).
func WithTimeout(d time.Duration) Option { return func(a *Applier) { a.timeout = d } }

// WithVerify makes every Apply render the Ruleset afresh as well as from
// its memory, and log an error and use the fresh table when the two
// differ: a check, for tests, that callers version their policies and
// sets truthfully.
func WithVerify() Option { return func(a *Applier) { a.verify = true } }

// New returns an Applier. It opens no socket until it is used; Close
// releases the one it keeps.
func New(log *slog.Logger, opts ...Option) *Applier {
	a := &Applier{log: log.With("component", "nft"), timeout: 30 * time.Second, eventsHold: 10 * time.Minute}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Close releases the Applier's sockets. The Applier may be used again
// afterwards; it then reads the table back once.
func (a *Applier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mon != nil {
		a.mon.close()
		a.mon = nil
	}
	a.dropSocket()
	return nil
}

// socket is conn, opened if need be, with deadline set.
func (a *Applier) socket(deadline time.Time) (*netlink.Conn, error) {
	if a.conn == nil {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: a.netns})
		if err != nil {
			return nil, fmt.Errorf("opening netfilter socket: %w", err)
		}
		if err := sockOptions(deadline)(c); err != nil {
			closeLater(c)
			return nil, err
		}
		a.conn = c
	}
	if err := a.conn.SetDeadline(deadline); err != nil {
		a.dropSocket()
		return nil, fmt.Errorf("setting netfilter socket deadline: %w", err)
	}
	return a.conn, nil
}

// dropSocket closes conn, in the background (see conn).
func (a *Applier) dropSocket() {
	if a.conn != nil {
		closeLater(a.conn)
		a.conn = nil
	}
}

// closeLater closes a netfilter socket without waiting for the kernel
// to free what the last transaction replaced (see Applier.conn).
func closeLater(c io.Closer) { go c.Close() }

// result describes one attempt.
type result struct {
	source string // where the current state came from
	stats  Stats
	// rejected is set when the transaction itself failed (not the reads
	// before it): the cases a retry from elsewhere may fix.
	rejected bool
}

// Apply makes the kernel's table equal to Render(rs) in one atomic
// transaction that changes only the difference. Calling it again with the
// same input sends nothing. The caller must not modify rs's slices
// afterwards: what Apply rendered from a slice it is given again is
// reused (give changed contents in new slices).
//
// It knows what the kernel holds from its own last transaction as long as
// the ruleset generation shows that nobody committed since, or the
// nftables events of the commits since show that none touched our table;
// otherwise (a restart, someone else's change to our table, lost events, a
// failure) it reads the table back. If the transaction fails it retries
// once from a fresh read-back, then recreates the whole table in one
// transaction as the last resort (which resets the counters). A failure to
// read is returned as is; the next Apply starts from a read-back.
func (a *Applier) Apply(ctx context.Context, rs Ruleset) error {
	start := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	want, err := a.render.render(rs)
	if err != nil {
		return fmt.Errorf("rendering ruleset: %w", err)
	}
	if a.verify {
		if fresh, _ := Render(rs); fresh.String() != want.String() {
			a.log.Error("memo check: the remembered rendering differs from a fresh one; using the fresh one", "diff", firstDiff(fresh.String(), want.String()))
			want = fresh
		}
	}
	var errs []error
	res, err := a.sync(ctx, want, false)
	if err != nil && res.rejected && res.source != "read-back" && ctx.Err() == nil {
		errs = append(errs, err)
		res, err = a.sync(ctx, want, false)
	}
	if err != nil && res.rejected && ctx.Err() == nil {
		errs = append(errs, err)
		res, err = a.sync(ctx, want, true)
	}
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// Counters are read by the owners of the table the kernel now holds.
	a.owners = want.owners
	a.last, a.lastSource = res.stats, res.source
	if len(errs) > 0 {
		a.log.Warn("nftables transaction failed, recovered", "source", res.source, "err", errors.Join(errs...))
	}
	if res.stats.changed() {
		s := res.stats
		a.log.Info("applied nftables", "source", res.source, "recreated", s.Recreated,
			"sets_added", s.SetsAdded, "sets_deleted", s.SetsDeleted,
			"chains_added", s.ChainsAdded, "chains_flushed", s.ChainsFlushed, "chains_deleted", s.ChainsDeleted,
			"rules_added", s.RulesAdded, "elements_added", s.ElemsAdded, "elements_deleted", s.ElemsDeleted,
			"took", time.Since(start).Round(time.Microsecond))
	}
	return nil
}

// Prime reads the kernel's table into the Applier's memory ahead of the
// first Apply, which then diffs against it instead of reading it back: a
// node that restarts reads the table (a quarter of a second at 1,000
// endpoints and 500 policies) while it loads its state cache and
// computes. The memory counts only if no transaction came during the
// read, and Apply uses it only if none came since (the ruleset
// generation, as after its own transactions). It does nothing once the
// Applier knows the table.
func (a *Applier) Prime(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem != nil {
		return nil
	}
	c, err := a.socket(a.deadline(ctx))
	if err != nil {
		return err
	}
	r := &reader{c: c}
	before, err := r.genID()
	var have *Table
	if err == nil {
		have, err = r.readTable()
	}
	var after uint32
	if err == nil {
		after, err = r.genID()
	}
	if err != nil {
		a.dropSocket()
		return err
	}
	if have != nil && before == after {
		a.mem, a.memGen = have, before
	}
	return nil
}

func (a *Applier) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(a.timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// sync makes one attempt: learn what the kernel holds, compute the
// changes, send them as one transaction. recreate rebuilds the table
// whatever it holds.
func (a *Applier) sync(ctx context.Context, want *Table, recreateAll bool) (res result, err error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	deadline := a.deadline(ctx)
	c, err := a.socket(deadline)
	if err != nil {
		return result{}, err
	}
	defer func() {
		if err != nil {
			a.dropSocket()
		}
	}()
	r := &reader{c: c}
	events := time.Now().Before(a.eventsUntil)
	if !events && a.mon != nil {
		a.log.Debug("no commits elsewhere for a while: nftables events unsubscribed", "for", a.eventsHold)
		a.mon.close()
		a.mon = nil
	}
	// Subscribe before reading the generation: the socket then holds
	// every transaction after it.
	fresh := events && a.mon == nil && a.subscribe()
	gen, err := r.genID()
	if err != nil {
		return result{}, err
	}
	if fresh {
		a.mon.from = gen
	}
	if a.mem != nil && gen != a.memGen {
		// Someone else committed here since our last transaction: follow
		// the events from now on, so that the next such commit need not
		// cost a read-back.
		a.eventsUntil = time.Now().Add(a.eventsHold)
		if a.mon == nil && a.subscribe() {
			if a.mon.from, err = r.genID(); err != nil {
				return result{}, err
			}
		}
	}
	var ops []op
	res = result{source: "recreate"}
	switch {
	case recreateAll:
		ops = recreate(want)
	case a.mem != nil && gen == a.memGen:
		res.source = "memory"
		ops = diff(a.mem, want)
	case a.mem != nil && a.vouch(a.memGen, 0, gen, deadline):
		res.source = "memory+events"
		a.memGen = gen
		ops = diff(a.mem, want)
	default:
		res.source = "read-back"
		have, err := r.readTable()
		if err != nil {
			a.mem = nil
			return res, err
		}
		ops = diff(have, want)
	}
	res.stats = statsOf(ops)
	if len(ops) == 0 {
		a.mem, a.memGen = want, gen
		return res, nil
	}
	a.mem = nil // unknown until the transaction is known to be the only one
	if len(ops) > quietOps && a.mon != nil {
		// Unsubscribed, the kernel need not copy every change of a large
		// transaction to the socket (nor we drain it). The generation
		// still vouches for memory; the next attempt subscribes again
		// while others commit here.
		a.mon.close()
		a.mon = nil
	}
	if err := a.send(ctx, ops, c); err != nil {
		res.rejected = true
		return res, fmt.Errorf("committing nftables transaction of %d changes (state from %s): %w", len(ops), res.source, err)
	}
	if next, err := r.genID(); err == nil && next == nextGen(gen) {
		// Ours was the only commit. Consume its events now, so that the
		// socket holds only what others commit.
		a.mem, a.memGen = want, next
		a.vouch(gen, next, next, deadline)
	}
	return res, nil
}

// subscribe opens the event socket; it reports whether it did.
func (a *Applier) subscribe() bool {
	m, err := openMonitor(a.netns)
	if err != nil {
		a.log.Debug("no nftables events, commits elsewhere will cost read-backs", "err", err)
		return false
	}
	a.mon = m
	return true
}

// vouch asks the event socket whether the transactions after generation
// known up to until, other than ours, left our table alone. A socket that
// lost events or fell behind is closed; the next attempt opens another.
func (a *Applier) vouch(known, ours, until uint32, deadline time.Time) bool {
	if a.mon == nil {
		return false
	}
	ok, err := a.mon.untouched(known, ours, until, deadline)
	if err != nil {
		a.log.Debug("nftables events lost, reading back", "err", err)
		a.mon.close()
		a.mon = nil
	}
	return ok
}

// quietOps is the size of a transaction above which the event socket is
// closed while it commits.
const quietOps = 1000

// listedOps is how many changes of a transaction the debug log lists: a
// full load has tens of thousands (38,000 lines in the policy bench, a
// few per cent of its apply, and a log no one reads line by line).
const listedOps = 200

// nextGen is the generation after g; the kernel skips 0.
func nextGen(g uint32) uint32 {
	if g+1 == 0 {
		return 1
	}
	return g + 1
}

// send marshals ops and commits them as one batch on c.
func (a *Applier) send(ctx context.Context, ops []op, c *netlink.Conn) error {
	if a.failSends > 0 {
		a.failSends--
		return errors.New("injected failure")
	}
	if a.log.Enabled(ctx, slog.LevelDebug) {
		if len(ops) > listedOps {
			a.log.Debug("nftables changes: only the first are listed (applied nftables counts them all)", "changes", len(ops), "listed", listedOps)
		}
		for _, o := range ops[:min(len(ops), listedOps)] {
			a.log.Debug("nftables change", "op", o.kind.String(), "name", o.name, "elements", len(o.elems))
		}
	}
	msgs, err := marshal(ops, &a.setID)
	if err != nil {
		return err
	}
	return commit(c, msgs)
}

// Counters reads the counters of every policy rule in the kernel: one
// Counter per rule of a policy in a direction that some endpoint uses,
// summed over the kernel rules (one per family) that render it. Without a
// table it returns nothing.
func (a *Applier) Counters(ctx context.Context) ([]Counter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	owners := a.owners
	deadline := a.deadline(ctx)
	a.mu.Unlock()
	// A socket of its own: Counters runs beside Apply.
	r, err := dialReader(a.netns, deadline)
	if err != nil {
		return nil, err
	}
	defer closeLater(r.c)
	rows, err := r.readRules()
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading counters: %w", err)
	}
	return sumCounters(owners, rows), nil
}

// Remove deletes table inet calico, for a host that leaves the cluster.
// A missing table is not an error (the batch adds it before deleting it).
func (a *Applier) Remove(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mem = nil
	c, err := a.socket(a.deadline(ctx))
	if err == nil {
		if err = a.send(ctx, []op{{kind: opAddTable}, {kind: opDelTable}}, c); err != nil {
			a.dropSocket()
		}
	}
	if err != nil {
		return fmt.Errorf("removing table inet calico: %w", err)
	}
	return nil
}

// firstDiff is the first line where two renderings differ.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range min(len(w), len(g)) {
		if w[i] != g[i] {
			return fmt.Sprintf("line %d: want %q, got %q", i+1, w[i], g[i])
		}
	}
	return fmt.Sprintf("want %d lines, got %d", len(w), len(g))
}

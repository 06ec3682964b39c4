package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Churn is a period of changes: workloads added and removed at a rate
// (one add, then one remove, so the count stays), hosts joining, leaving
// and dying.
type Churn struct {
	Rate     float64       `json:"rate"` // workload changes per second
	Duration time.Duration `json:"duration"`
	// JoinsPerMinute hosts join with PerHost workloads each;
	// LeavesPerMinute leave (calico leave --force); DeathsPerMinute die.
	JoinsPerMinute  float64 `json:"joinsPerMinute"`
	LeavesPerMinute float64 `json:"leavesPerMinute"`
	DeathsPerMinute float64 `json:"deathsPerMinute"`
	PerHost         int     `json:"perHost"`
	Apps            int     `json:"apps"`
	// Parallel bounds the changes in flight; a change due while it is
	// reached is skipped and counted.
	Parallel int `json:"parallel"`
}

// ChurnResult is what a churn did.
type ChurnResult struct {
	Adds, Removes, Joins, Leaves, Deaths, Skipped int
	Errors                                        []string
	// AddTimes and RemoveTimes are the workload changes' durations, as
	// the datastore took them (ms).
	AddTimes, RemoveTimes []float64
	// Span is from the churn's start to the end of its last workload
	// change (ms): the time the Adds and Removes took, without the joins
	// and leaves still going on after (a leave removes a host's
	// workloads one by one).
	Span float64
}

// Churn runs c until its duration passes or ctx ends.
func (s *Sim) Churn(ctx context.Context, c Churn) ChurnResult {
	var res ChurnResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	s.churn(ctx, c, &mu, &wg, &res)
	wg.Wait()
	return res
}

// churn starts the changes due until c's duration passes; changes in
// flight then finish (with ctx).
func (s *Sim) churn(ctx context.Context, c Churn, mu *sync.Mutex, wg *sync.WaitGroup, res *ChurnResult) {
	end := time.After(c.Duration)
	sem := make(chan struct{}, max(c.Parallel, 1))
	record := func(f func(r *ChurnResult)) { mu.Lock(); f(res); mu.Unlock() }
	fail := func(err error) { record(func(r *ChurnResult) { r.Errors = append(r.Errors, err.Error()) }) }
	start := time.Now()
	due := func(perSecond float64, done int) bool { return float64(done) < time.Since(start).Seconds()*perSecond }
	var ops, joins, leaves, deaths int
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-tick.C:
		}
		for ; due(c.Rate, ops); ops++ {
			select {
			case sem <- struct{}{}:
			default:
				record(func(r *ChurnResult) { r.Skipped++ })
				continue
			}
			add := ops%2 == 0
			wg.Go(func() {
				defer func() { <-sem }()
				s.churnWorkload(ctx, add, c.Apps, func(f func(*ChurnResult)) {
					record(func(r *ChurnResult) { f(r); r.Span = max(r.Span, ms(time.Since(start))) })
				}, fail)
			})
		}
		for ; due(c.JoinsPerMinute/60, joins); joins++ {
			wg.Go(func() { s.churnJoin(ctx, c, record, fail) })
		}
		for ; due(c.LeavesPerMinute/60, leaves); leaves++ {
			wg.Go(func() { s.churnLeave(ctx, record, fail) })
		}
		for ; due(c.DeathsPerMinute/60, deaths); deaths++ {
			if h := s.randomHost(); h != nil {
				s.Die(h)
				record(func(r *ChurnResult) { r.Deaths++ })
			}
		}
	}
}

func (s *Sim) churnWorkload(ctx context.Context, add bool, apps int, record func(func(*ChurnResult)), fail func(error)) {
	h := s.randomHost()
	if h == nil {
		return
	}
	if add {
		d, err := timed(func() error {
			_, err := h.AddWorkload(ctx, AppLabels(rand.N(max(apps, 1))), "sim")
			return err
		})
		if err != nil {
			fail(err)
			return
		}
		record(func(r *ChurnResult) { r.Adds++; r.AddTimes = append(r.AddTimes, ms(d)) })
		return
	}
	ws := h.Workloads()
	if len(ws) == 0 {
		return
	}
	d, err := timed(func() error { return h.RemoveWorkload(ctx, ws[rand.N(len(ws))]) })
	if err != nil {
		fail(err)
		return
	}
	record(func(r *ChurnResult) { r.Removes++; r.RemoveTimes = append(r.RemoveTimes, ms(d)) })
}

func (s *Sim) churnJoin(ctx context.Context, c Churn, record func(func(*ChurnResult)), fail func(error)) {
	h, err := s.AddHost(ctx)
	if err != nil {
		fail(err)
		return
	}
	for range c.PerHost {
		if _, err := h.AddWorkload(ctx, AppLabels(rand.N(max(c.Apps, 1))), "sim"); err != nil {
			fail(err)
			return
		}
	}
	h.reconcile()
	record(func(r *ChurnResult) { r.Joins++ })
}

func (s *Sim) churnLeave(ctx context.Context, record func(func(*ChurnResult)), fail func(error)) {
	h := s.randomHost()
	if h == nil {
		return
	}
	if err := s.Leave(ctx, h); err != nil {
		fail(fmt.Errorf("%s leaving: %w", h.Name, err))
		return
	}
	record(func(r *ChurnResult) { r.Leaves++ })
}

// randomHost is a live host, at random, or nil.
func (s *Sim) randomHost() *Host {
	hs := s.Hosts()
	for range 10 {
		if len(hs) == 0 {
			return nil
		}
		if h := hs[rand.N(len(hs))]; !h.isDead() {
			return h
		}
	}
	return nil
}

// AppLabels are a simulated workload's labels: one of apps applications.
func AppLabels(app int) map[string]string {
	return map[string]string{"app": fmt.Sprintf("app-%d", app), "sim": "yes"}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

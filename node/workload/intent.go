package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
)

// An intent records, before any side effect, what a change to a workload
// is about to make, so that a node killed in the middle (kill -9, power)
// can finish or undo it when it starts again: a namespace it made, an
// interface, addresses, a profile, with no endpoint to account for them.
// The record is removed once the change is complete, either way.
type intent struct {
	// Op is "add" or "remove".
	Op        string `json:"op"`
	Namespace string `json:"namespace"`
	// Endpoint is the WorkloadEndpoint's name; Workload the workload's.
	Endpoint string `json:"endpoint"`
	Workload string `json:"workload"`
	// HostIface and Handle are the interface and IPAM handle the change
	// makes or removes.
	HostIface string `json:"hostIface"`
	Handle    string `json:"handle"`
	// Attached says HostIface is an interface something else made,
	// which the node never deletes.
	Attached bool `json:"attached,omitempty"`
	// NetNS is the name of a namespace the node made (and removes).
	NetNS string `json:"netns,omitempty"`
	// Profiles are profiles the add made (removed again on undo).
	Profiles []string  `json:"profiles,omitempty"`
	Started  time.Time `json:"started"`
}

func (s *Service) intentDir() string { return filepath.Join(s.DataDir, "workloads") }

func (s *Service) intentPath(ns, endpoint string) string {
	return filepath.Join(s.intentDir(), url.PathEscape(ns+"/"+endpoint)+".json")
}

// record writes the intent, replacing an earlier one of the workload.
func (s *Service) record(in *intent) error {
	if err := os.MkdirAll(s.intentDir(), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(in)
	path := s.intentPath(in.Namespace, in.Endpoint)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("recording the workload change: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("recording the workload change: %w", err)
	}
	return nil
}

// forget removes the workload's intent: its change is complete.
func (s *Service) forget(ns, endpoint string) { os.Remove(s.intentPath(ns, endpoint)) }

// intents lists the changes a previous run left unfinished.
func (s *Service) intents() ([]*intent, error) {
	files, err := filepath.Glob(filepath.Join(s.intentDir(), "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*intent
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		in := &intent{}
		if err := json.Unmarshal(b, in); err != nil || in.Endpoint == "" {
			s.Log.Warn("ignoring an unreadable workload intent", "file", f, "err", err)
			os.Remove(f)
			continue
		}
		out = append(out, in)
	}
	return out, nil
}

// Reconcile finishes or undoes the workload changes a previous run left
// half done: an add whose endpoint exists is complete; one without is
// undone (interface, addresses, a namespace and profiles it made); a
// remove is finished. It needs the datastore.
func (s *Service) Reconcile(ctx context.Context) error {
	ins, err := s.intents()
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range ins {
		if err := s.reconcile(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("workload %s/%s: %w", in.Namespace, in.Workload, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) reconcile(ctx context.Context, in *intent) error {
	defer s.lock(in.Endpoint)()
	w, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, in.Namespace, in.Endpoint)
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	case in.Op == "add" && err == nil && w.Spec.InterfaceName == in.HostIface:
		s.Log.Info("a workload add cut short had completed", "workload", in.Namespace+"/"+in.Workload)
	case in.Op == "add":
		s.Log.Info("undoing a workload add cut short", "workload", in.Namespace+"/"+in.Workload)
		if err := s.undoAdd(ctx, in); err != nil {
			return err
		}
	default:
		s.Log.Info("finishing a workload remove cut short", "workload", in.Namespace+"/"+in.Workload)
		if err := s.finishRemove(ctx, in, w); err != nil {
			return err
		}
	}
	s.forget(in.Namespace, in.Endpoint)
	return nil
}

// undoAdd takes away what an unfinished add made.
func (s *Service) undoAdd(ctx context.Context, in *intent) error {
	errs := []error{unwire(in.HostIface, in.Attached), s.releaseHandle(ctx, in.Handle)}
	errs = append(errs, s.removeNetNS(in.NetNS, in.Namespace))
	for _, p := range in.Profiles {
		if _, err := s.Store.Delete(ctx, store.ID{Kind: store.KindProfile, Name: p}, ""); err != nil &&
			!errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInUse) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finishRemove takes away what an unfinished remove left; w is the
// endpoint when it is still there.
func (s *Service) finishRemove(ctx context.Context, in *intent, w *store.WorkloadEndpoint) error {
	if err := s.deleteEndpoint(ctx, w); err != nil {
		return err
	}
	return errors.Join(unwire(in.HostIface, in.Attached), s.releaseHandle(ctx, in.Handle), s.removeNetNS(in.NetNS, in.Namespace))
}

// removeRecords is finishRemove's datastore part: the endpoint (w, if
// any) and the addresses of the intent's handle.
func (s *Service) removeRecords(ctx context.Context, in *intent, w *store.WorkloadEndpoint) error {
	if err := s.deleteEndpoint(ctx, w); err != nil {
		return err
	}
	return s.releaseHandle(ctx, in.Handle)
}

// deleteEndpoint deletes w, if any and if still there.
func (s *Service) deleteEndpoint(ctx context.Context, w *store.WorkloadEndpoint) error {
	if w == nil {
		return nil
	}
	if _, err := s.Store.Delete(ctx, store.IDOf(w), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// releaseHandle frees the addresses of a workload's handle; "" is a
// workload whose addresses the front end holds (Docker's).
func (s *Service) releaseHandle(ctx context.Context, handle string) error {
	if handle == "" {
		return nil
	}
	_, err := s.IPAM.ReleaseByHandle(ctx, handle)
	return err
}

// removeNetNS removes a namespace the node made for a workload of
// namespace ns, with its marker; "" is none.
func (s *Service) removeNetNS(name, ns string) error {
	if name == "" {
		return nil
	}
	marker := s.netnsMarker(name)
	b, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(b)) != ns+"/"+name {
		return nil // not ours (or gone already)
	}
	if err := veth.DeleteNetNS(name); err != nil {
		return err
	}
	os.Remove(marker)
	return nil
}

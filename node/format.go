package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"calico/node/api"
)

// DataFormat is the format of the data dir that this binary reads and
// writes. Raise it, with a migration from the format before, whenever a
// change to what the data dir holds (node.json, members.json, pki/, the
// state cache, workload intents, …) would be misread by the binaries of
// the format before: they then refuse the data dir instead.
const DataFormat = 1

// formatFile records the data dir's format: <data-dir>/version.
const formatFile = "version"

// formatRecord is what formatFile holds.
type formatRecord struct {
	Format int `json:"format"`
	// Calico is the version of the binary that last wrote the record.
	Calico string `json:"calico"`
}

// A migration moves a data dir from one format to the next. It must be
// safe to run again: a node stopped in the middle of one runs it again
// when it starts.
type migration struct {
	// did says what it changed, for the log.
	did string
	do  func(dataDir string) error
}

// migrations[i] moves a data dir from format i to i+1.
var migrations = []migration{
	// Format 0 is the data dir of the binaries before formats were
	// recorded: the same layout as format 1 without the record.
	{did: "recorded the data dir's format; nothing else changed", do: func(string) error { return nil }},
}

// checkFormat reads the data dir's format before anything else reads the
// data dir: it records the current format in a new data dir, migrates an
// older one (saying so in one log line) and refuses a newer one. The
// caller holds the data dir's lock.
func checkFormat(dataDir, version string, log *slog.Logger) error {
	path := filepath.Join(dataDir, formatFile)
	rec, err := readFormat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !used(dataDir):
		return writeFormat(path, version)
	case errors.Is(err, fs.ErrNotExist):
		rec = formatRecord{Format: 0, Calico: "of before data dir formats"}
	case err != nil:
		return err
	}
	if rec.Format > DataFormat {
		return api.Errorf(api.Conflict, "data dir %s has format %d, written by calico %s; this calico (%s) reads format %d at most: run calico %s or newer with it, or move it aside",
			dataDir, rec.Format, orUnknown(rec.Calico), version, DataFormat, orUnknown(rec.Calico))
	}
	if rec.Format == DataFormat {
		if rec.Calico != version {
			return writeFormat(path, version)
		}
		return nil
	}
	var did []string
	for f := rec.Format; f < DataFormat; f++ {
		if err := migrations[f].do(dataDir); err != nil {
			return fmt.Errorf("migrating data dir %s from format %d to %d: %w", dataDir, f, f+1, err)
		}
		did = append(did, fmt.Sprintf("%d->%d: %s", f, f+1, migrations[f].did))
	}
	if err := writeFormat(path, version); err != nil {
		return err
	}
	log.Info(fmt.Sprintf("migrated data dir %s from format %d to %d", dataDir, rec.Format, DataFormat),
		"last run by", "calico "+rec.Calico, "did", strings.Join(did, "; "))
	return nil
}

// used reports whether a data dir without a format record holds a node's
// state (an earlier binary's), rather than being new.
func used(dataDir string) bool {
	for _, f := range []string{"node.json", "members.json", "state.db", "pki", "etcd", "workloads", "netns"} {
		if _, err := os.Lstat(filepath.Join(dataDir, f)); err == nil {
			return true
		}
	}
	return false
}

func readFormat(path string) (formatRecord, error) {
	var rec formatRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Format < 0 {
		return rec, fmt.Errorf("%s does not say the data dir's format (%q): move the data dir aside, or write {\"format\": %d} into it if you know it is that", path, strings.TrimSpace(string(b)), DataFormat)
	}
	return rec, nil
}

// writeFormat records the current format atomically.
func writeFormat(path, version string) error {
	b, _ := json.Marshal(formatRecord{Format: DataFormat, Calico: version})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("recording the data dir's format: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("recording the data dir's format: %w", err)
	}
	return nil
}

func orUnknown(v string) string {
	if v == "" {
		return "(unknown version)"
	}
	return v
}

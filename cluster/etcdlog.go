package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdLogger is a zap logger that writes etcd's lines through the node's
// logger, so the node's log has one format (--log-format) and no stack
// traces. Lines etcd writes at error level that are not errors of ours
// are written at debug level: its listeners closing while it stops, and
// the first storage-version update racing the first commit (benign).
func etcdLogger(log *slog.Logger, level string) *zap.Logger {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		lvl = zapcore.ErrorLevel
	}
	return zap.New(&slogCore{log: log.With("component", "etcd"), level: lvl})
}

type slogCore struct {
	log    *slog.Logger
	level  zapcore.Level
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.level }

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, level: c.level, fields: append(slices.Clone(c.fields), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		level = slog.LevelWarn
	case e.Level <= zapcore.DebugLevel:
		level = slog.LevelDebug
	}
	if level == slog.LevelError && (closing(enc.Fields) || firstCommitRace(e.Message, enc.Fields)) {
		level = slog.LevelDebug
	}
	if !c.log.Enabled(context.Background(), level) {
		return nil
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, plain(enc.Fields[k])))
	}
	c.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// closing reports whether a line's error is only that a listener or
// server was closed: what etcd says of every listener as it stops.
func closing(fields map[string]any) bool {
	err, _ := fields["error"].(string)
	return strings.Contains(err, "use of closed network connection") || strings.Contains(err, "http: Server closed") ||
		strings.Contains(err, "mux: server closed") || strings.Contains(err, "grpc: the server has been stopped")
}

// firstCommitRace reports whether a line is etcd's storage-version
// monitor running on a fresh member before the backend holds a raft
// term: etcd logs it at error level, and the monitor simply tries again
// every four seconds (etcdserver.monitorStorageVersion), by which time
// the first commit has written the term. Seen on founding a cluster.
func firstCommitRace(msg string, fields map[string]any) bool {
	err, _ := fields["error"].(string)
	return msg == "failed to update storage version" && strings.HasSuffix(err, "missing term information")
}

// plain makes zap's field values printable by slog's handlers.
func plain(v any) any {
	switch v := v.(type) {
	case string, bool, int, int64, uint64, float64:
		return v
	case fmt.Stringer:
		return v.String()
	case error:
		return v.Error()
	}
	return fmt.Sprint(v)
}

package bgp

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// levelTrace is below slog's Debug: GoBGP's own debug output (every
// message, every path) goes there, so that our Debug stays readable.
const levelTrace = slog.LevelDebug - 4

// gobgpLogger adapts slog to GoBGP's pkg/log Logger. GoBGP's Info is
// chatter about its own workings and becomes Debug; its Warn and Error
// stay what they are. Panic and Fatal are only ever called on "code logic
// bug" paths; they are logged as errors and return, rather than take the
// whole node down over one BGP message.
type gobgpLogger struct{ log *slog.Logger }

var _ gobgplog.Logger = gobgpLogger{}

func (l gobgpLogger) emit(level slog.Level, msg string, fields gobgplog.Fields) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

func (l gobgpLogger) Panic(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l gobgpLogger) Fatal(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l gobgpLogger) Error(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l gobgpLogger) Warn(msg string, f gobgplog.Fields)  { l.emit(slog.LevelWarn, msg, f) }
func (l gobgpLogger) Info(msg string, f gobgplog.Fields)  { l.emit(slog.LevelDebug, msg, f) }
func (l gobgpLogger) Debug(msg string, f gobgplog.Fields) { l.emit(levelTrace, msg, f) }

// SetLevel is a no-op: the level belongs to the slog handler.
func (l gobgpLogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel tells GoBGP whether to build its expensive debug output at all.
func (l gobgpLogger) GetLevel() gobgplog.LogLevel {
	if l.log.Enabled(context.Background(), levelTrace) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}

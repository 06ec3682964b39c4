package agent

import (
	"context"
	"log/slog"
	"sync"
)

// levelFatal is above every level slog logs at: Calico's Fatal shows
// only what would stop the process, and nothing here does.
const levelFatal = slog.LevelError + 4

// slogLevel is the slog level of one of Calico's log severities (as
// calc.LogSeverity gives them); ok is false for "".
func slogLevel(severity string) (level slog.Level, ok bool) {
	switch severity {
	case "Debug":
		return slog.LevelDebug, true
	case "Info":
		return slog.LevelInfo, true
	case "Warning":
		return slog.LevelWarn, true
	case "Error":
		return slog.LevelError, true
	case "Fatal":
		return levelFatal, true
	}
	return 0, false
}

// logLevel is a level that can be set, or unset to defer to the handler
// it filters for (the node's own level).
type logLevel struct {
	mu    sync.Mutex
	set   bool
	level slog.Level
}

// Set sets the level from a Calico severity ("" unsets it), and reports
// whether that changed anything.
func (l *logLevel) Set(severity string) bool {
	level, ok := slogLevel(severity)
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := ok != l.set || ok && level != l.level
	l.set, l.level = ok, level
	return changed
}

func (l *logLevel) get() (slog.Level, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.level, l.set
}

// levelHandler is a handler with a level of its own, when set: it logs
// records that level lets through, whatever the level of the handler it
// writes to (which does not look again: slog's handlers check the level
// in Enabled only).
type levelHandler struct {
	slog.Handler
	level *logLevel
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if own, ok := h.level.get(); ok {
		return l >= own
	}
	return h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(attrs), h.level}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.level}
}

package cluster

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestEtcdLoggerLevels(t *testing.T) {
	for _, c := range []struct {
		name string
		log  func(*zap.Logger)
		want string
	}{
		{"an error of etcd's stays an error",
			func(l *zap.Logger) { l.Error("failed to apply", zap.Error(errors.New("disk full"))) }, "level=ERROR"},
		{"a listener closing while etcd stops",
			func(l *zap.Logger) {
				l.Error("serve", zap.Error(errors.New("accept: use of closed network connection")))
			}, "level=DEBUG"},
		{"the first storage-version update racing the first commit",
			func(l *zap.Logger) {
				l.Error("failed to update storage version", zap.String("cluster-version", "3.6.0"),
					zap.Error(errors.New("cannot detect storage schema version: missing term information")))
			}, "level=DEBUG"},
		{"a storage-version update failing otherwise",
			func(l *zap.Logger) {
				l.Error("failed to update storage version", zap.Error(errors.New("bbolt: database not open")))
			}, "level=ERROR"},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.log(etcdLogger(log, "debug"))
		if !strings.Contains(buf.String(), c.want) {
			t.Errorf("%s: want %s, got %q", c.name, c.want, buf.String())
		}
	}
}

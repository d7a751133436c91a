package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// LogRing keeps the most recent log lines in memory (for the logs job and
// `trellis-edge status`). It is an io.Writer for a slog text handler: each
// Write is one record.
type LogRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// NewLogRing keeps up to n lines.
func NewLogRing(n int) *LogRing {
	if n <= 0 {
		n = 1000
	}
	return &LogRing{lines: make([]string, n)}
}

// Write stores one line per newline-terminated record.
func (r *LogRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		r.lines[r.next] = string(l)
		r.next = (r.next + 1) % len(r.lines)
		if r.next == 0 {
			r.full = true
		}
	}
	return len(p), nil
}

// Last returns up to n of the most recent lines, oldest first.
func (r *LogRing) Last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	count := r.next
	if r.full {
		count = len(r.lines)
	}
	if n <= 0 || n > count {
		n = count
	}
	out := make([]string, 0, n)
	for i := count - n; i < count; i++ {
		idx := i
		if r.full {
			idx = (r.next + i) % len(r.lines)
		}
		out = append(out, r.lines[idx])
	}
	return out
}

// Text returns the last n lines joined with newlines.
func (r *LogRing) Text(n int) string { return strings.Join(r.Last(n), "\n") }

// Handler returns a handler that writes both to h and to the ring (text
// format, at level and above).
func (r *LogRing) Handler(h slog.Handler, level slog.Leveler) slog.Handler {
	return slog.NewMultiHandler(h, slog.NewTextHandler(r, &slog.HandlerOptions{Level: level}))
}

package pluginhost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	// maxLogLine bounds one relayed stderr line; the rest is dropped.
	maxLogLine = 16 << 10
	// tailLines and tailLineLen bound what the relay keeps to diagnose a
	// failed start.
	tailLines   = 8
	tailLineLen = 512
	// relayBurst lines may be relayed at once, and relayRate more per
	// second after that: a plugin cannot flood the daemon's log (and the
	// journal behind it). The lines past the limit are counted and said
	// in one "lines suppressed" line when relaying resumes.
	relayBurst = 200
	relayRate  = 20
)

// relay receives a plugin's raw stderr (go-plugin writes each line, then
// "\n") and re-logs every line under the plugin's name: hclog JSON at its
// own level with its fields, anything else at debug (a Go panic at error).
// It never trusts the JSON's shape.
type relay struct {
	log hclog.Logger
	now func() time.Time

	mu      sync.Mutex
	line    []byte
	dropped bool
	inPanic bool
	last    []string

	tokens     float64 // lines that may be relayed now
	refilled   time.Time
	suppressed int // lines not relayed since the last one that was
}

func newRelay(log hclog.Logger) *relay {
	return &relay{log: log, now: time.Now, tokens: relayBurst}
}

// allow takes one line's token, refilling at relayRate per second.
func (r *relay) allow() bool {
	now := r.now()
	if !r.refilled.IsZero() {
		r.tokens = min(relayBurst, r.tokens+now.Sub(r.refilled).Seconds()*relayRate)
	}
	r.refilled = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

func (r *relay) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if room := maxLogLine - len(r.line); len(chunk) > room {
			r.line = append(r.line, chunk[:room]...)
			r.dropped = true
		} else {
			r.line = append(r.line, chunk...)
		}
		if i < 0 {
			break
		}
		r.emit()
		b = b[i+1:]
	}
	return n, nil
}

func (r *relay) emit() {
	line := r.line
	dropped := r.dropped
	r.line, r.dropped = r.line[:0], false
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	keep := string(line)
	if len(keep) > tailLineLen {
		keep = keep[:tailLineLen]
	}
	r.last = append(r.last, keep)
	if len(r.last) > tailLines {
		r.last = r.last[1:]
	}
	e := parseLogLine(line)
	if !e.json {
		s := strings.TrimSpace(e.msg)
		switch {
		case strings.HasPrefix(s, "panic: "), strings.HasPrefix(s, "fatal error: "):
			r.inPanic = true
			e.level = hclog.Error
		case r.inPanic:
			e.level = hclog.Error
		}
	}
	if dropped {
		e.args = append(e.args, "truncated_at", maxLogLine)
	}
	if e.level == hclog.Off {
		return
	}
	if !r.allow() {
		r.suppressed++
		return
	}
	if r.suppressed > 0 {
		r.log.Warn(fmt.Sprintf("%d lines suppressed", r.suppressed), "reason", "the plugin writes to stderr faster than the relay limit", "limit_lines_per_second", relayRate)
		r.suppressed = 0
	}
	r.log.Log(e.level, e.msg, e.args...)
}

// tail returns the last lines the plugin wrote to stderr.
func (r *relay) tail() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.last...)
}

// logLine is one parsed stderr line.
type logLine struct {
	json  bool
	level hclog.Level
	msg   string
	args  []any
}

// parseLogLine parses an hclog JSON line ("@message", "@level", fields);
// a line that is not a JSON object is returned as a debug message.
// Non-string "@message" or "@level" values are tolerated.
func parseLogLine(line []byte) logLine {
	plain := logLine{level: hclog.Debug, msg: string(line)}
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return plain
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return plain
	}
	e := logLine{json: true, level: hclog.Info, msg: text(raw["@message"])}
	if l := hclog.LevelFromString(text(raw["@level"])); l != hclog.NoLevel {
		e.level = l
	}
	for _, k := range []string{"@message", "@level", "@timestamp", "@module", "@caller"} {
		delete(raw, k)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v any
		if err := json.Unmarshal(raw[k], &v); err != nil {
			v = string(raw[k])
		}
		e.args = append(e.args, k, v)
	}
	return e
}

// text returns a JSON string's value, or any other JSON value as its text.
func text(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

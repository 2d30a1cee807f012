// Package deploy holds the systemd unit, its ExecStartPre helper, the
// sysusers.d entry and the example drop-ins that install.sh lays out, and
// the tests that check them with systemd-analyze (verify, and security
// --offline for the exposure score) against a real install into a temporary
// root. The Go code here only reads unit files and systemd-analyze output
// for those tests.
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Unit is a parsed unit file: section → key → values, in file order. An
// empty assignment ("CapabilityBoundingSet=") is kept as "".
type Unit map[string]map[string][]string

// Get returns every value of key in section.
func (u Unit) Get(section, key string) []string { return u[section][key] }

// ParseUnit parses systemd unit file syntax: "[Section]" headers,
// "Key=Value" lines, "#" and ";" comments, and lines continued with a
// trailing backslash. A line that is none of these is an error naming its
// number.
func ParseUnit(data []byte) (Unit, error) {
	u := Unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	var cont strings.Builder
	contStart := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if cont.Len() > 0 {
			t := strings.TrimSpace(line)
			if strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
				continue // comments inside a continuation are skipped
			}
			line = cont.String() + " " + t
			cont.Reset()
		} else {
			contStart = n
		}
		if strings.HasSuffix(line, "\\") {
			cont.WriteString(strings.TrimRight(strings.TrimSuffix(line, "\\"), " \t"))
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";"):
			continue
		case strings.HasPrefix(t, "["):
			if !strings.HasSuffix(t, "]") || len(t) < 3 {
				return nil, fmt.Errorf("line %d: bad section header %q", n, t)
			}
			section = t[1 : len(t)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(t, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: not a Key=Value assignment: %q", contStart, t)
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: assignment %q before any [Section]", contStart, key)
		}
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read unit: %w", err)
	}
	if cont.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", n)
	}
	return u, nil
}

var exposureRE = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9]+(?:\.[0-9]+)?) `)

// ParseExposure finds the "Overall exposure level for UNIT: X.Y …" line of
// `systemd-analyze security` output and returns the unit and the score.
func ParseExposure(out []byte) (unit string, score float64, err error) {
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		return "", 0, fmt.Errorf("no \"Overall exposure level\" line in systemd-analyze output")
	}
	score, err = strconv.ParseFloat(string(m[2]), 64)
	if err != nil {
		return "", 0, fmt.Errorf("exposure level %q: %w", m[2], err)
	}
	return string(m[1]), score, nil
}

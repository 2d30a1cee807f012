package suite

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/secure-ai/runtime-attestor/bench/internal/proctree"
)

// unitFile is the systemd unit whose resource limits the footprint is
// compared with.
const unitFile = "deploy/secure-ai-runtime-attestor.service"

// Limits are the unit's resource limits (0 when not set).
type Limits struct {
	MemoryMaxBytes int64   `json:"memory_max_bytes"`
	TasksMax       int     `json:"tasks_max"`
	CPUQuotaPct    float64 `json:"cpu_quota_percent"`
}

// readLimits reads MemoryMax=, TasksMax= and CPUQuota= from the unit; a
// missing unit gives no limits.
func readLimits(root string) Limits {
	var l Limits
	f, err := os.Open(filepath.Join(root, unitFile))
	if err != nil {
		return l
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "MemoryMax":
			l.MemoryMaxBytes = parseBytes(v)
		case "TasksMax":
			l.TasksMax, _ = strconv.Atoi(v)
		case "CPUQuota":
			l.CPUQuotaPct, _ = strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		}
	}
	return l
}

// parseBytes reads a systemd size: a number with an optional K, M, G or T
// suffix (powers of 1024); 0 for anything else ("infinity").
func parseBytes(s string) int64 {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0
	}
	return v * mult
}

// verdict compares a peak with the unit's MemoryMax and TasksMax. RSS is
// only a proxy for the cgroup's memory charge (which also counts page
// cache); threads are what TasksMax counts.
func (l Limits) verdict(p proctree.Peak) string {
	var parts []string
	if l.MemoryMaxBytes > 0 {
		parts = append(parts, fmt.Sprintf("MemoryMax=%s: %s", mib(l.MemoryMaxBytes), within(p.RSSBytes <= l.MemoryMaxBytes)))
	}
	if l.TasksMax > 0 {
		parts = append(parts, fmt.Sprintf("TasksMax=%d: %s", l.TasksMax, within(p.Threads <= l.TasksMax)))
	}
	return strings.Join(parts, "; ")
}

// cpuNote says how long an attestation needing cpuMS of CPU takes at the
// least under the unit's CPUQuota.
func (l Limits) cpuNote(cpuMS float64) string {
	if l.CPUQuotaPct <= 0 {
		return ""
	}
	return fmt.Sprintf("CPUQuota=%.0f%%: at least %s per attestation", l.CPUQuotaPct, msec(cpuMS*100/l.CPUQuotaPct))
}

func within(ok bool) string {
	if ok {
		return "within"
	}
	return "OVER"
}

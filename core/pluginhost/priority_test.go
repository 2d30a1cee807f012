package pluginhost

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPluginsRunAtLowestPriority: a plugin process started through the
// real launcher runs at nice 19, so that inside the unit's cgroup the
// daemon (the API) gets the CPU first.
func TestPluginsRunAtLowestPriority(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "light", "light")
	h := New(Options{Dir: dir, Plugins: []Spec{{Name: "light", Enabled: true}}, Resident: true, Launcher: launcher(t)})
	defer h.Close()
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pids := h.PIDs()
	if len(pids) != 1 {
		t.Fatalf("plugin processes %v, want one", pids)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pids[0]) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which ends with the last ')'): the
	// nice value is field 19 of stat, the 17th after it.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 17 || fields[16] != "19" {
		t.Fatalf("plugin process %d: stat %q, want nice 19", pids[0], stat)
	}
}

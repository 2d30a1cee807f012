package pluginhost

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkMeasure measures one attestation over n light plugins (the
// cheapest possible check), i.e. the host's own overhead per attestation.
func BenchmarkMeasure(b *testing.B) {
	for _, n := range []int{1, 6, 16} {
		b.Run(fmt.Sprintf("plugins=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			var specs []Spec
			for i := range n {
				name := fmt.Sprintf("light_%d", i)
				install(b, dir, "light", name)
				specs = append(specs, Spec{Name: name, Enabled: true})
			}
			h := New(Options{Dir: dir, Plugins: specs, Resident: true})
			defer h.Close()
			if err := h.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, 32)
			b.ResetTimer()
			for b.Loop() {
				for _, r := range h.Measure(context.Background(), nonce) {
					if r.Fault != "" {
						b.Fatalf("%s: %+v", r.Name, r.Findings)
					}
				}
			}
		})
	}
}

// BenchmarkStartClose measures starting and stopping one plugin (verify,
// hash, exec in a PID namespace, handshake, describe, configure, stop).
func BenchmarkStartClose(b *testing.B) {
	dir := b.TempDir()
	install(b, dir, "light", "light")
	for b.Loop() {
		h := New(Options{Dir: dir, Plugins: []Spec{{Name: "light", Enabled: true}}, Resident: true})
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if len(h.PIDs()) != 1 {
			b.Fatal("plugin not running")
		}
		h.Close()
	}
}

// BenchmarkPluginStart measures what one plugin start costs as the daemon
// runs plugins by default (on demand): an attestation of one light plugin,
// which verifies and hashes it, starts it through the launcher (the real
// attestor-launcher executable, built as shipped) that confines it and
// executes the verified descriptor, handshakes, describes, configures,
// measures and stops it. cpu-ms/op is the CPU of both sides (the host,
// the launcher and the plugin), the figure a CPU quota charges.
func BenchmarkPluginStart(b *testing.B) {
	dir := b.TempDir()
	install(b, dir, "light", "light")
	// A plugin file is installed long before the daemon starts it: its
	// digest is remembered after the first start (trust.go hash). Waiting
	// out the racy margin keeps a fresh install from re-hashing the whole
	// file at every start, which no installed plugin does.
	time.Sleep(racyMargin + 100*time.Millisecond)
	h := New(Options{Dir: dir, Plugins: []Spec{{Name: "light", Enabled: true}}, Launcher: launcher(b), GOMAXPROCS: 1,
		SocketDir: tmpfsDir(b)})
	defer h.Close()
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, 32)
	host, kids := cpuTime()
	for b.Loop() {
		for _, r := range h.Measure(context.Background(), nonce) {
			if r.Fault != "" {
				b.Fatalf("%s: %+v", r.Name, r.Findings)
			}
		}
	}
	host2, kids2 := cpuTime()
	perOp := func(ns int64) float64 { return float64(ns) / 1e6 / float64(b.N) }
	b.ReportMetric(perOp(host2-host+kids2-kids), "cpu-ms/op")
	b.ReportMetric(perOp(kids2-kids), "child-cpu-ms/op")
}

// tmpfsDir is a folder on a tmpfs (/run, else /dev/shm), as the unit's
// RuntimeDirectory is, where the host makes each plugin's socket folder;
// a temporary folder when there is none.
func tmpfsDir(b *testing.B) string {
	for _, parent := range []string{"/run", "/dev/shm"} {
		var st unix.Statfs_t
		if unix.Statfs(parent, &st) != nil || st.Type != unix.TMPFS_MAGIC {
			continue
		}
		if d, err := os.MkdirTemp(parent, "attestor-bench-"); err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}

// cpuTime is the CPU this process and its reaped children (the launcher
// and the plugin it became) used, in ns.
func cpuTime() (self, children int64) {
	var s, k syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &s)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &k)
	ns := func(t syscall.Timeval) int64 { return t.Nano() }
	return ns(s.Utime) + ns(s.Stime), ns(k.Utime) + ns(k.Stime)
}

package pluginhost

import (
	"runtime"
	"sync"
	"testing"
)

// TestPluginOutlivesThreadChurn: plugins die with the thread that forked
// them (Pdeathsig), so that thread must live as long as the host. Threads
// of the host's process that exit (a goroutine that ends locked to its
// thread ends the thread; the runtime picks whichever idle thread it
// likes) never take a plugin with them.
//
// Not parallel: other tests start plugins from their own goroutines, on
// whatever thread they run (as the tests' harnesses do, not the host), and
// the threads this test ends would take those plugins with them.
func TestPluginOutlivesThreadChurn(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "good", "first")
	install(t, dir, "good", "second")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "first", Enabled: true}, {Name: "second", Enabled: true}}})
	hs.start()
	rs := hs.measure()
	wantGood(t, rs, "first")
	wantGood(t, rs, "second")
	before := []proc{procOf(t, hs.pidOf("first")), procOf(t, hs.pidOf("second"))}
	for range 20 {
		var wg sync.WaitGroup
		for range 2 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			}()
		}
		wg.Wait()
		runtime.Gosched()
	}
	for _, p := range before {
		if !p.alive() {
			t.Fatalf("plugin process %d died when other threads of the host ended", p.pid)
		}
	}
	rs = hs.measure()
	wantGood(t, rs, "first")
	wantGood(t, rs, "second")
	if hs.pidOf("first") != before[0].pid || hs.pidOf("second") != before[1].pid {
		t.Errorf("the plugins were restarted: pids %d %d, were %d %d", hs.pidOf("first"), hs.pidOf("second"), before[0].pid, before[1].pid)
	}
}

package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/elffixture"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// writeELF writes an elffixture object to path, executable.
func writeELF(t *testing.T, path string, d elffixture.Dynamic) string {
	t.Helper()
	if err := os.WriteFile(path, d.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// flipLink points link at a and b in turn, as fast as it can, until stop
// is closed: a local attacker racing the launcher's examination of what
// link names.
func flipLink(t *testing.T, link, a, b string, stop <-chan struct{}, wg *sync.WaitGroup) {
	t.Helper()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			to := a
			if i%2 == 1 {
				to = b
			}
			tmp := fmt.Sprintf("%s.%d", link, i)
			if os.Symlink(to, tmp) == nil {
				_ = os.Rename(tmp, link)
			}
		}
	}()
}

// TestHostileLibraryGrant: hostile plugins whose grant runs a helper ELF
// of their own making, whose absolute DT_NEEDED names (1) the daemon's
// signing key, (2) a FIFO, (3) a link in a folder they write, flipped
// without pause between a real library and the daemon's key folder. Under
// the real host and launcher: every plugin starts (the key and the FIFO
// are skipped as libraries, the FIFO does not stall the launcher), no
// finding or log line holds the key's bytes, and over repeated launches
// the racing plugin never reads the key folder.
func TestHostileLibraryGrant(t *testing.T) {
	t.Parallel()
	l := newSecretsLayout(t)
	secret := "KEY9-signing-bytes"
	if err := os.WriteFile(l.key, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, shm := t.TempDir(), t.TempDir()
	install(t, dir, "hostile", "keylib")
	install(t, dir, "hostile", "fifolib")
	install(t, dir, "hostile", "racelib")
	fifo := filepath.Join(shm, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	lib := writeELF(t, filepath.Join(shm, "libok.so"), elffixture.Dynamic{})
	link := filepath.Join(shm, "libevil.so")
	if err := os.Symlink(lib, link); err != nil {
		t.Fatal(err)
	}
	helper := func(name, needed string) sandbox.Rules {
		return sandbox.Rules{Exec: []string{writeELF(t, filepath.Join(shm, name), elffixture.Dynamic{Needed: []string{needed}})}}
	}
	keyInLink := filepath.Join(link, filepath.Base(l.key))
	plan := cfg("read", []string{l.key, keyInLink}, "list", []string{l.runtime, link})
	hs := newStrictHarness(t, Options{Dir: dir, StartTimeout: 5 * time.Second, Plugins: []Spec{
		{Name: "keylib", Enabled: true, ConfigJSON: plan, Sandbox: helper("key-helper", l.key)},
		{Name: "fifolib", Enabled: true, ConfigJSON: plan, Sandbox: helper("fifo-helper", fifo)},
		{Name: "racelib", Enabled: true, ConfigJSON: plan, Sandbox: helper("race-helper", link)},
	}})
	hs.start()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	flipLink(t, link, lib, l.runtime, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	leaks := []string{secret, secret[:4], fmt.Sprint([]byte(secret[:4])), "magic"}
	for round := range 6 {
		for name, r := range hs.measure() {
			if r.Fault != "" {
				t.Errorf("round %d: %s: fault %s %v", round, name, r.Fault, r.Findings)
			}
			for _, f := range r.Findings {
				for _, s := range leaks {
					if strings.Contains(f.Message, s) {
						t.Errorf("round %d: %s: finding %q holds %q", round, name, f.Message, s)
					}
				}
			}
			if r.Fault != "" {
				continue
			}
			for what, outcome := range attempts(t, r) {
				if outcome == "ok" {
					t.Errorf("round %d: %s: %s: ok, want refused", round, name, what)
				}
			}
		}
	}
	for _, s := range leaks {
		if strings.Contains(hs.logs.String(), s) {
			t.Errorf("the host's log holds %q", s)
		}
	}
}

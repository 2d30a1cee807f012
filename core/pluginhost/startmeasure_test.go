package pluginhost

import (
	"context"
	"errors"
	"testing"
)

// TestStartMeasureOneStart: on demand, StartMeasure starts each plugin
// once, configures and measures it in that start, and stops it; the next
// Measure starts it once more.
func TestStartMeasureOneStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "marker", "first")
	install(t, dir, "marker", "second")
	hs := newOnDemandHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "first", Enabled: true}, {Name: "second", Enabled: true}}})
	rs, err := hs.host.StartMeasure(context.Background(), nonce(t))
	if err != nil {
		t.Fatalf("StartMeasure: %v", err)
	}
	got := byName(t, rs)
	for _, name := range []string{"first", "second"} {
		wantGood(t, got, name)
		if n := len(markerStarts(t, dir, name)); n != 1 {
			t.Errorf("%s started %d times before its first result, want once", name, n)
		}
	}
	if pids := hs.host.PIDs(); pids != nil {
		t.Errorf("plugins still running after an on-demand StartMeasure: %v", pids)
	}
	wantGood(t, hs.measure(), "first")
	if n := len(markerStarts(t, dir, "first")); n != 2 {
		t.Errorf("first started %d times after one more Measure, want twice", n)
	}
	if _, err := hs.host.StartMeasure(context.Background(), nonce(t)); err == nil {
		t.Error("StartMeasure after Start succeeded")
	}
}

// TestStartMeasureConfigRefused: in the one start, a built-in's refused
// configuration is still the *ConfigError naming its key; a third-party
// plugin's is a core.plugin_config finding in the results, not an error.
func TestStartMeasureConfigRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		builtin bool
	}{{"built-in", true}, {"third party", false}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			install(t, dir, "good", "good")
			install(t, dir, "refuseconfig", "refuser")
			hs := newOnDemandHarness(t, Options{Dir: dir, Plugins: []Spec{
				{Name: "good", Enabled: true},
				{Name: "refuser", Enabled: true, Builtin: tt.builtin},
			}})
			rs, err := hs.host.StartMeasure(context.Background(), nonce(t))
			got := byName(t, rs)
			wantGood(t, got, "good")
			wantFault(t, got, "refuser", FaultConfig, CodeConfig, "refused its configuration: mode: refused by the refuseconfig test plugin")
			var ce *ConfigError
			switch {
			case tt.builtin && (!errors.As(err, &ce) || err.Error() != "plugins.refuser.config: mode: refused by the refuseconfig test plugin"):
				t.Errorf("StartMeasure = %v, want the refuser's *ConfigError", err)
			case !tt.builtin && err != nil:
				t.Errorf("StartMeasure = %v, want nil: a third-party plugin's configuration is not the daemon's to refuse", err)
			}
		})
	}
}

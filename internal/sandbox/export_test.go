package sandbox

import (
	"fmt"

	"github.com/landlock-lsm/go-landlock/landlock"
)

// LandlockSwapped is Landlock(r) with swap run between the examination of
// r.Exec's closure (interpreters and libraries checked as ELF files) and
// the making of the rules from it: the moment a local attacker racing the
// launcher aims for. Tests only.
func LandlockSwapped(r Rules, swap func() error) (Status, error) {
	st := Status{ABI: ABI()}
	if err := r.Validate(); err != nil {
		return st, err
	}
	cl, err := execClosure(r.Exec, systemLDConfig())
	if err != nil {
		return st, err
	}
	defer cl.close()
	if err := swap(); err != nil {
		return st, fmt.Errorf("swap: %w", err)
	}
	rules, skipped, pinned, err := closureRules(r, cl, nil)
	defer func() {
		for _, f := range pinned {
			f.Close()
		}
	}()
	if err != nil {
		return st, err
	}
	return restrictWith(st, rules, skipped)
}

// FixtureELF is a minimal x86-64 ELF object with these dynamic entries (see
// dynELF). Tests only.
func FixtureELF(interp string, needed, rpath, runpath []string) []byte {
	return dynELF{interp: interp, needed: needed, rpath: rpath, runpath: runpath}.bytes()
}

// LandlockGuardSwapped is Landlock(r) with a guard (as PluginRuleset takes
// one) that records the real paths it is shown and then runs swap: the
// moment after the check, before the rules reach the kernel, that a local
// attacker flipping a link aims for. Tests only.
func LandlockGuardSwapped(r Rules, swap func() error, seen *Rules) (Status, error) {
	st := Status{ABI: ABI()}
	rules, skipped, release, err := landlockRules(r, systemLDConfig(), func(real Rules) error {
		*seen = real
		return swap()
	})
	if err != nil {
		return st, err
	}
	defer release()
	return restrictWith(st, rules, skipped)
}

// restrictWith restricts the process with rules, as Landlock does.
func restrictWith(st Status, rules []landlock.Rule, skipped []string) (Status, error) {
	st.Skipped = skipped
	if st.ABI == 0 {
		st.Reason = "the kernel has no Landlock"
		return st, nil
	}
	if err := landlock.V11.BestEffort().Restrict(rules...); err != nil {
		return st, err
	}
	st.Landlock = true
	return st, nil
}

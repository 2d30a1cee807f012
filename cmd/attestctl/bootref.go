package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

const bootRefText = `record writes a boot reference from this machine's event logs: per PCR, every
event it measured (type, digest, a description for humans). The tpm plugin
compares each boot with it (policy key boot_reference) and names every event
that differs. Record on a machine you trust, booted as it should be: the log
is what the machine says it booted, the reference is what you allow.

With --merge FILE, what this boot measured is added to FILE's reference: an
event that changed (a new kernel, a new shim) becomes a second allowed
digest at its place, a PCR whose events changed shape becomes a second
variant. The old boot stays allowed until you record afresh without --merge.

The reference is printed, or written to -o FILE (atomically, mode 0644).`

func (a *app) bootReference(args []string) int {
	fset := a.flagSet("boot-reference", "record [--event-log PATH] [--userspace-log PATH] [--pcrs LIST] [--merge FILE] [-o FILE]", bootRefText)
	eventLog := fset.String("event-log", eventlog.DefaultFirmwareLog, "the firmware's TCG event log")
	userLog := fset.String("userspace-log", eventlog.DefaultUserspaceLog, "systemd's userspace measurement log (\"\": none; absent: none)")
	pcrList := fset.String("pcrs", "", "PCRs to record, e.g. 4,7,8,9 (default: every PCR the logs extend)")
	merge := fset.String("merge", "", "add this boot to the reference in FILE instead of starting afresh")
	out := fset.String("o", "", "write the reference to FILE instead of standard output")
	pos, code, ok := parse(fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || pos[0] != "record" {
		return a.usageError(fset, "boot-reference needs the subcommand record")
	}
	pcrs, err := parsePCRList(*pcrList)
	if err != nil {
		return a.usageError(fset, "--pcrs: %v", err)
	}
	ref, n, err := recordReference(*eventLog, *userLog, pcrs)
	if err != nil {
		return a.fail(exitUsage, "boot-reference record: %v", err)
	}
	if *merge != "" {
		raw, err := regfile.Read(*merge, eventlog.MaxReferenceSize)
		if err != nil {
			return a.fail(exitUsage, "boot-reference record: --merge: %v", err)
		}
		old, err := eventlog.ParseReference(raw)
		if err == nil {
			err = old.Merge(ref)
		}
		if err != nil {
			return a.fail(exitUsage, "boot-reference record: --merge %s: %v", *merge, err)
		}
		ref = old
	}
	b, err := ref.Marshal()
	if err != nil {
		return a.fail(exitUsage, "boot-reference record: %v", err)
	}
	if *out == "" {
		_, _ = a.stdout.Write(b)
	} else if err := writeAtomic(*out, b); err != nil {
		return a.fail(exitUsage, "boot-reference record: %v", err)
	}
	fmt.Fprintf(a.stderr, "recorded %d events of PCRs %s (%s) from %s\n", n, joinPCRs(ref.PCRList()), ref.Bank, *eventLog)
	return exitOK
}

// recordReference reads the logs and records every event of pcrs (all
// when empty), returning the reference and the number of events recorded.
func recordReference(eventLog, userLog string, pcrs []int) (*eventlog.Reference, int, error) {
	raw, err := regfile.Read(eventLog, eventlog.MaxLogSize)
	if err != nil {
		return nil, 0, fmt.Errorf("firmware event log: %w", err)
	}
	fw, err := eventlog.Parse(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("firmware event log %s: %w", eventLog, err)
	}
	var user []eventlog.Event
	if userLog != "" {
		raw, err := regfile.Read(userLog, eventlog.MaxLogSize)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, 0, fmt.Errorf("userspace log: %w", err)
		default:
			if user, err = eventlog.ParseCEL(raw); err != nil {
				return nil, 0, fmt.Errorf("userspace log %s: %w", userLog, err)
			}
		}
	}
	ref, err := eventlog.Record(fw, user, eventlog.SHA256, pcrs)
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for _, v := range ref.PCRs {
		n += len(v.Events)
	}
	return ref, n, nil
}

// parsePCRList parses "4,7,8-9".
func parsePCRList(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b > eventlog.MaxPCR || a > b {
			return nil, fmt.Errorf("%q is not a PCR or range of PCRs in 0..%d", part, eventlog.MaxPCR)
		}
		for p := a; p <= b; p++ {
			seen[p] = true
		}
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out, nil
}

func joinPCRs(p []int) string {
	s := make([]string, len(p))
	for i, x := range p {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// writeAtomic replaces path with b: a temporary file in the same folder,
// synced, renamed over path. A reader (the tpm plugin) sees the old
// reference or the new one, never half of one.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

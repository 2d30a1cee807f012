package tpm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// The state file (state_file) holds the clock high-water marks between
// plugin processes, which the plugin host starts for one attestation only:
//
//	{
//	  "version": 1,
//	  "tpms": {
//	    "000b…": {"reset_count": 3, "restart_count": 0, "clock": 812345, "seen": "2026-11-28T19:00:00Z"}
//	  }
//	}
//
// "tpms" is keyed by the hex TPM name of the attestation key (000b and the
// SHA-256 of its public area). It is rewritten after every verified quote
// through a temporary file in the same folder, synced and renamed over it,
// and the folder synced: a crash leaves the old file or the new one.
const (
	stateVersion = 1
	// maxStateSize bounds what is read: maxClockRecords records take
	// about 3 KiB.
	maxStateSize = 64 << 10
	// tpmNameMin and tpmNameMax bound a TPM name in bytes: a 2-byte hash
	// algorithm and a SHA-1 to SHA-512 digest.
	tpmNameMin = 2 + 20
	tpmNameMax = 2 + 64
	tempSuffix = ".tmp"
)

// stateFileJSON is the state file. Pointers tell a missing field from a
// zero one.
type stateFileJSON struct {
	Version *int                        `json:"version"`
	TPMs    map[string]*stateRecordJSON `json:"tpms"`
}

type stateRecordJSON struct {
	ResetCount   *uint32 `json:"reset_count"`
	RestartCount *uint32 `json:"restart_count"`
	Clock        *uint64 `json:"clock"`
	Seen         *string `json:"seen"`
}

// errStateDir is the state file's folder missing (or not a folder):
// persistence is not set up, the clock is tracked in the process only.
type errStateDir struct {
	dir  string
	what string
}

func (e *errStateDir) Error() string { return fmt.Sprintf("state folder %s %s", e.dir, e.what) }

// parseState parses the state file's bytes into marks keyed by TPM name.
// Its errors say what is wrong; it never panics.
func parseState(b []byte) (map[string]clockMark, error) {
	if len(b) > maxStateSize {
		return nil, fmt.Errorf("larger than %d bytes", maxStateSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var raw stateFileJSON
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a state file: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not a state file: data after the JSON object")
	}
	switch {
	case raw.Version == nil:
		return nil, errors.New("no version")
	case *raw.Version != stateVersion:
		return nil, fmt.Errorf("version %d is not supported (want %d)", *raw.Version, stateVersion)
	case raw.TPMs == nil:
		return nil, errors.New("no tpms object")
	case len(raw.TPMs) > maxClockRecords:
		return nil, fmt.Errorf("%d TPM records, more than the %d kept", len(raw.TPMs), maxClockRecords)
	}
	out := make(map[string]clockMark, len(raw.TPMs))
	for id, r := range raw.TPMs {
		if err := checkTPMName(id); err != nil {
			return nil, fmt.Errorf("tpms: %w", err)
		}
		m, err := r.mark()
		if err != nil {
			return nil, fmt.Errorf("tpms.%s: %w", id, err)
		}
		out[id] = m
	}
	return out, nil
}

func (r *stateRecordJSON) mark() (clockMark, error) {
	switch {
	case r == nil:
		return clockMark{}, errors.New("null instead of a record")
	case r.ResetCount == nil:
		return clockMark{}, errors.New("no reset_count")
	case r.RestartCount == nil:
		return clockMark{}, errors.New("no restart_count")
	case r.Clock == nil:
		return clockMark{}, errors.New("no clock")
	case r.Seen == nil:
		return clockMark{}, errors.New("no seen")
	}
	seen, err := time.Parse(time.RFC3339Nano, *r.Seen)
	if err != nil {
		return clockMark{}, fmt.Errorf("seen %q is not an RFC 3339 time", truncate(*r.Seen, 80))
	}
	// Kept in UTC, which must still be a four-digit year to be written
	// back ("9999-12-31T23:00:00-02:00" is not).
	if seen = seen.UTC(); seen.Year() < 0 || seen.Year() > 9999 {
		return clockMark{}, fmt.Errorf("seen %q is out of range in UTC", *r.Seen)
	}
	return clockMark{
		clock: attest.ClockInfo{Clock: *r.Clock, ResetCount: *r.ResetCount, RestartCount: *r.RestartCount},
		seen:  seen,
	}, nil
}

// checkTPMName accepts the lowercase hex TPM name of a key.
func checkTPMName(id string) error {
	b, err := hex.DecodeString(id)
	if err != nil || strings.ToLower(id) != id || len(b) < tpmNameMin || len(b) > tpmNameMax {
		return fmt.Errorf("%q is not a TPM key name (%d to %d bytes in lowercase hex)", truncate(id, 80), tpmNameMin, tpmNameMax)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// encodeState renders marks as the state file's bytes, keys sorted.
func encodeState(marks map[string]clockMark) ([]byte, error) {
	ver := stateVersion
	raw := stateFileJSON{Version: &ver, TPMs: make(map[string]*stateRecordJSON, len(marks))}
	for id, m := range marks {
		seen := m.seen.UTC().Format(time.RFC3339Nano)
		raw.TPMs[id] = &stateRecordJSON{
			ResetCount: &m.clock.ResetCount, RestartCount: &m.clock.RestartCount, Clock: &m.clock.Clock, Seen: &seen,
		}
	}
	b, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode TPM clock state: %w", err)
	}
	return append(b, '\n'), nil
}

// readState reads the state file at path. A missing file in an existing
// folder is no marks and no error (the first verified quote); a missing
// folder is *errStateDir; anything else that keeps the file from being
// read and parsed is an error naming what is wrong.
func readState(path string) (map[string]clockMark, error) {
	// O_NOFOLLOW: a symbolic link planted in place of the file is refused
	// (and replaced by the next write). O_NONBLOCK: a FIFO does not block
	// the open; it is refused as not a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			dir := filepath.Dir(path)
			fi, derr := os.Stat(dir)
			switch {
			case errors.Is(derr, fs.ErrNotExist) || errors.Is(derr, syscall.ENOTDIR):
				return nil, &errStateDir{dir: dir, what: "does not exist"}
			case derr != nil:
				return nil, fmt.Errorf("examine its folder: %w", derr)
			case !fi.IsDir():
				return nil, &errStateDir{dir: dir, what: "is not a folder"}
			case errors.Is(err, fs.ErrNotExist):
				return map[string]clockMark{}, nil
			}
		}
		if errors.Is(err, syscall.ELOOP) {
			return nil, errors.New("is a symbolic link")
		}
		return nil, fmt.Errorf("unreadable: %w", unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("unreadable: %w", unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("unreadable: %w", unwrapPath(err))
	}
	return parseState(b)
}

// unwrapPath drops the *fs.PathError's repetition of the path, which the
// caller names already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// writeState replaces the file at path with data atomically: a temporary
// file (0600) in the same folder, written and synced, renamed over path,
// then the folder synced so that the rename survives a crash. On failure
// the temporary file is removed and path is left as it was.
func writeState(path string, data []byte) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	f, err := os.CreateTemp(dir, "."+base+".*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("create a temporary file in %s: %w", dir, unwrapPath(err))
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, unwrapPath(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, unwrapPath(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, unwrapPath(err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s over %s: %w", filepath.Base(tmp), path, errors.Unwrap(err))
	}
	done = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", dir, unwrapPath(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, unwrapPath(err))
	}
	return nil
}

// removeStaleTemps removes temporary files an earlier process, killed
// between creating and renaming one, left beside path. It returns the
// names removed and the first error.
func removeStaleTemps(path string) ([]string, error) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+"."
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, unwrapPath(err))
	}
	var removed []string
	var first error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			if first == nil {
				first = fmt.Errorf("remove %s: %w", name, unwrapPath(err))
			}
			continue
		}
		removed = append(removed, name)
	}
	sort.Strings(removed)
	return removed, first
}

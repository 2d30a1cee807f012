package verdict

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// TPM runs f with exclusive use of the TPM (an *evidence.TPM): no quote
// sees an extension without its log record.
type TPM interface {
	Exclusive(ctx context.Context, f func(tp transport.TPM) error) error
}

// Options configure a Measurer.
type Options struct {
	// TPM is the evidence TPM; nil: there is none and nothing is measured.
	TPM TPM
	// PCR is the SHA-256 PCR extended; LogPath the verdict log.
	PCR     int
	LogPath string
	Logger  hclog.Logger
}

// Status is what GET /api/security/status reports of the measurement.
type Status struct {
	// Measuring: verdicts are extended into PCR.
	Measuring bool `json:"measuring"`
	PCR       *int `json:"pcr"`
	// Log is the verdict log's path; Records how many it holds.
	Log     string `json:"log"`
	Records int    `json:"records"`
	// LastState is the state of the last verdict measured; "" before one.
	LastState state.State `json:"last_state"`
	// Reason says why nothing is measured, or what went wrong.
	Reason string `json:"reason,omitempty"`
}

// Measurer extends each distinct verdict into the PCR and the log. Safe
// for concurrent use; Measure calls are serialised.
type Measurer struct {
	opts Options
	log  hclog.Logger

	mu      sync.Mutex
	started bool
	halted  error  // a disagreement: nothing more is extended this boot
	last    error  // the last failure (cleared by a success)
	noTPM   error  // the last attempt found no TPM
	records int    // records in the log
	pcr     []byte // the PCR value the log replays to
	lastD   []byte // digest of the last verdict measured
	lastSt  state.State
}

// New returns a Measurer.
func New(opts Options) *Measurer {
	l := opts.Logger
	if l == nil {
		l = hclog.NewNullLogger()
	}
	return &Measurer{opts: opts, log: l}
}

// ErrHalted wraps the disagreement that stopped the measurement.
var ErrHalted = errors.New("verdict measurement stopped")

// Problem returns why the last verdict could not be measured, or nil: a
// disagreement between the log and the PCR (wrapping ErrHalted) stays
// until the next boot.
func (m *Measurer) Problem() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.halted != nil {
		return m.halted
	}
	return m.last
}

// Status returns the measurement's status.
func (m *Measurer) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.TPM == nil {
		return Status{Reason: "no TPM: no evidence TPM is configured (evidence_tpm_device, evidence_tpm_socket), so verdicts are not measured"}
	}
	if m.opts.LogPath == "" {
		return Status{Reason: "verdict_log_path is empty: verdicts are not measured"}
	}
	pcr := m.opts.PCR
	s := Status{Measuring: m.started && m.halted == nil, PCR: &pcr, Log: m.opts.LogPath, Records: m.records, LastState: m.lastSt}
	switch {
	case m.halted != nil:
		s.Reason = m.halted.Error()
	case m.last != nil:
		s.Reason = m.last.Error()
	case m.noTPM != nil:
		s.Measuring = false
		s.Reason = "no TPM answers, so verdicts are not measured: " + m.noTPM.Error()
	case !m.started:
		s.Reason = "no verdict measured yet"
	}
	return s
}

// Measure extends the verdict of the bundle raw into the PCR and appends
// it to the log, unless it is the verdict last measured. The first call
// replays the existing log (a restarted daemon continues it) against the
// PCR; when they disagree nothing is ever extended this boot. Without a
// TPM (ErrNoTPM) it returns nil: Status says so. b, when not nil, must be
// the bundle that was just sealed into raw, unchanged since (the engine
// has it: the bundle is then not decoded again); the verdict measured is
// b's, the record logged holds raw's digest.
func (m *Measurer) Measure(ctx context.Context, raw []byte, b *bundle.Bundle) error {
	if m.opts.TPM == nil || m.opts.LogPath == "" {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.halted != nil {
		return m.halted
	}
	err := m.measure(ctx, raw, b)
	m.last, m.noTPM = err, nil
	if errors.Is(err, evidence.ErrNoTPM) {
		// No TPM answers: nothing is measured, which is no fault of the
		// appliance; the status says so and the next attestation tries again.
		m.last, m.noTPM = nil, err
		m.log.Debug("verdict not measured: no TPM", "error", err)
		return nil
	}
	if err != nil {
		if errors.Is(err, ErrHalted) {
			m.halted = err
		}
		m.log.Error("verdict not measured", "pcr", m.opts.PCR, "error", err)
	}
	return err
}

func (m *Measurer) measure(ctx context.Context, raw []byte, b *bundle.Bundle) error {
	var v Verdict
	var ms Measurements
	var err error
	if b != nil {
		v, ms, err = fromBundle(b)
	} else {
		v, ms, b, err = of(raw)
	}
	if err != nil {
		return err
	}
	d, err := v.Digest()
	if err != nil {
		return err
	}
	if m.started && bytes.Equal(d, m.lastD) {
		return nil
	}
	return m.opts.TPM.Exclusive(ctx, func(tp transport.TPM) error {
		f, err := openLog(m.opts.LogPath)
		if err != nil {
			return err
		}
		defer f.Close()
		if !m.started {
			if err := m.start(tp, f); err != nil {
				return err
			}
			if bytes.Equal(d, m.lastD) {
				return nil
			}
		}
		// The record is built only now that it is written: not for a
		// verdict already in the PCR, nor while no TPM answers.
		rec, err := m.record(raw, b, v, ms, d)
		if err != nil {
			return err
		}
		return m.extend(tp, f, rec, d)
	})
}

// record builds the log record of verdict v of the bundle raw (b,
// decoded).
func (m *Measurer) record(raw []byte, b *bundle.Bundle, v Verdict, ms Measurements, d []byte) (Record, error) {
	bd, err := bundle.ContentDigest(raw)
	if err != nil {
		return Record{}, err
	}
	return Record{
		RecNum: uint64(m.records), PCR: m.opts.PCR, ContentType: ContentType,
		Digests: []Digest{{HashAlg: "sha256", Digest: hex.EncodeToString(d)}},
		Content: Content{Verdict: v, Measurements: ms, Time: b.Timestamp, Sequence: b.Sequence, BundleDigest: hex.EncodeToString(bd)},
	}, nil
}

// start replays the log in f against the PCR.
func (m *Measurer) start(tp transport.TPM, f *os.File) error {
	data, err := io.ReadAll(io.LimitReader(f, MaxLog+1))
	if err != nil {
		return fmt.Errorf("read verdict log %s: %w", m.opts.LogPath, err)
	}
	pcr, err := evidence.ReadPCR(tp, m.opts.PCR)
	if err != nil {
		return err
	}
	recs, err := Check(data, m.opts.PCR, pcr)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrHalted, m.opts.LogPath, err)
	}
	m.started, m.records, m.pcr = true, len(recs), pcr
	if n := len(recs); n > 0 {
		m.lastD, _ = recs[n-1].Digest()
		m.lastSt = recs[n-1].Content.Verdict.State
	}
	m.log.Info("verdict log replayed", "pcr", m.opts.PCR, "records", len(recs), "log", m.opts.LogPath)
	return nil
}

// extend appends rec to the log, then extends the PCR with d; on a failed
// extension the record is cut off again. The PCR is read first: when it
// is not what the log replays to, something else extended it.
func (m *Measurer) extend(tp transport.TPM, f *os.File, rec Record, d []byte) error {
	cur, err := evidence.ReadPCR(tp, m.opts.PCR)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(cur, m.pcr) != 1 {
		return fmt.Errorf("%w: PCR %d is %x, not %x as the verdict log replays: something else extends it (choose another verdict_pcr)", ErrHalted, m.opts.PCR, cur, m.pcr)
	}
	line, err := rec.Encode()
	if err != nil {
		return err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("verdict log %s: %w", m.opts.LogPath, err)
	}
	if end+int64(len(line)) > MaxLog {
		return fmt.Errorf("verdict log %s would exceed %d bytes: no more verdicts are measured this boot", m.opts.LogPath, MaxLog)
	}
	// A record not written or not durable is cut off again: the PCR is
	// extended only for a verdict the log keeps.
	if _, err = f.Write(line); err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Truncate(end)
		return fmt.Errorf("append to verdict log %s: %w", m.opts.LogPath, err)
	}
	if err := evidence.ExtendPCR(tp, m.opts.PCR, d); err != nil {
		if terr := f.Truncate(end); terr != nil {
			return fmt.Errorf("%w: %w; and the record could not be removed from the log: %w", ErrHalted, err, terr)
		}
		return err
	}
	m.records++
	m.pcr = Extend(m.pcr, d)
	m.lastD, m.lastSt = d, rec.Content.Verdict.State
	m.log.Info("verdict measured", "pcr", m.opts.PCR, "state", rec.Content.Verdict.State, "recnum", rec.RecNum)
	return nil
}

// openLog opens (creating) the verdict log for appending: its folder is
// made mode 0750, the file 0640; both must belong to this user and be
// writable by it alone, and the file may not be a symbolic link.
func openLog(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("verdict log folder: %w", err)
	}
	if err := ownedStrict(dir, true); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open verdict log (a symbolic link is refused): %w", err)
	}
	if err := ownedStrict(path, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ownedStrict checks path is a folder (dir) or regular file of this user
// that group and others cannot write.
func ownedStrict(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("verdict log: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case dir && !fi.IsDir(), !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("verdict log: %s is not a %s (mode %s)", path, map[bool]string{true: "folder", false: "regular file"}[dir], fi.Mode())
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("verdict log: %s belongs to another user: only the daemon may write the verdict log", path)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("verdict log: %s is writable by group or others (mode %s): chmod go-w it", path, fi.Mode().Perm())
	}
	return nil
}

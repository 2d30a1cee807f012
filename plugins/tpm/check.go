// Package tpm is the runtime-attestor check that measures the TPM 2.0: it
// reads the SHA-256 PCR bank, compares it with the pinned expected_pcrs,
// quotes the PCRs with an attestation key using the daemon's nonce as
// qualifying data, verifies the quote in Go (package attest), and tracks the
// TPM's clock across quotes to catch a rolled-back TPM. It talks to the TPM
// with github.com/google/go-tpm over /dev/tpmrm0 or a swtpm Unix socket
// (package tpmio); it never shells out.
package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// Version is the plugin's version.
const Version = "1.0.0"

// Measurement keys.
const (
	KeyAvailable      = "tpm_available"
	KeyQuoteVerified  = "tpm_quote_verified"
	KeyPCRs           = "boot_measurements.pcrs"
	KeyQuote          = "quote"
	KeyAKName         = "ak_name"
	KeyEventLog       = "boot_measurements.event_log"
	KeyPCRBanks       = "pcr_banks"
	maxQualifyingData = 32
	// deadlineReserve caps the part of a measurement's time kept back from
	// TPM calls, so that a TPM that does not answer still leaves time to
	// report it.
	deadlineReserve = 500 * time.Millisecond
)

// opener opens a connection to the TPM.
type opener func(ctx context.Context) (tpmio.Conn, error)

// check is the tpm check. Measure is never called concurrently (the SDK
// serialises calls), so its state needs no lock.
type check struct {
	// override, when set, replaces the device or socket of the
	// configuration (tests reach the in-process simulator through it).
	override opener

	cfg          settings
	conn         tpmio.Conn // open connection, nil when closed
	ak           *akKey     // loaded attestation key, nil when none
	flushedStale bool       // stale transients flushed (TPMs without a resource manager)
	clock        clockTracker
	// stateLoaded: the state file was read into clock (or found absent
	// or unusable, to be rewritten) in this process. While its folder is
	// missing it stays false and the file is tried again at the next
	// verified quote.
	stateLoaded bool
}

var (
	_ sdk.Check      = (*check)(nil)
	_ sdk.Configurer = (*check)(nil)
)

// New returns the tpm check, configured with the defaults until Configure.
func New() sdk.Check { return newCheck(nil) }

func newCheck(o opener) *check {
	cfg, err := parseConfig(sdk.NewConfig(nil))
	if err != nil {
		panic("tpm: default configuration is invalid: " + err.Error())
	}
	return &check{override: o, cfg: cfg}
}

// Describe implements sdk.Check.
func (c *check) Describe() sdk.Description {
	return sdk.Description{
		Name:     "tpm",
		Version:  Version,
		Summary:  "TPM 2.0 presence, SHA-256 PCR values against expected_pcrs, a quote over them with the daemon's nonce verified against the attestation key, and the boot's event logs replayed against that quote and compared with the boot reference",
		Fills:    []string{KeyAvailable, KeyQuoteVerified, KeyPCRs, KeyEventLog},
		Findings: findingSpecs,
	}
}

// Configure implements sdk.Configurer. It validates the configuration only;
// the TPM is first opened by Measure.
func (c *check) Configure(_ context.Context, cfg sdk.Config) error {
	s, err := parseConfig(cfg)
	if err != nil {
		return err
	}
	if s.target() != c.cfg.target() || s.akHandle != c.cfg.akHandle || s.akAlg != c.cfg.akAlg {
		c.reset()
		c.flushedStale = false
	}
	if s.stateFile != c.cfg.stateFile {
		// The marks in memory are kept (they are per AK, so another TPM
		// or key does not inherit them) and merged with the new file's.
		c.stateLoaded = false
	}
	c.cfg = s
	return nil
}

// reset closes the connection and forgets the AK, so that the next
// measurement starts afresh.
func (c *check) reset() {
	c.closeConn()
	c.ak = nil
}

// closeConn closes the connection, keeping the AK (swtpm keeps transient
// objects between connections; ensureAK checks the key is still there).
func (c *check) closeConn() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// keepOpen reports whether the connection stays open between measurements:
// a device does (the kernel's resource manager shares it); swtpm's socket
// does not, since swtpm serves one client at a time.
func (c *check) keepOpen() bool { return c.override != nil || c.cfg.socket == "" }

// resourceManaged reports whether the TPM flushes the plugin's transient
// objects when the connection closes (/dev/tpmrm*).
func (c *check) resourceManaged() bool {
	return c.override == nil && c.cfg.socket == "" && strings.HasPrefix(filepath.Base(c.cfg.device), "tpmrm")
}

func (c *check) open(ctx context.Context) (tpmio.Conn, error) {
	if c.override != nil {
		return c.override(ctx)
	}
	if c.cfg.socket != "" {
		return tpmio.DialSocket(ctx, c.cfg.socket)
	}
	return tpmio.OpenDevice(c.cfg.device)
}

// measurement is the state of one Measure call.
type measurement struct {
	res       *sdk.Result
	tpm       transport.TPM
	log       hclog.Logger
	available bool
	// sel is the PCR selection: the configured PCRs and every PCR the
	// boot reference lists.
	sel []int
	// boot is what the event log step needs: the reference, and the PCR
	// values the quote vouched for.
	boot bootState
}

func (m *measurement) add(code, subject, format string, args ...any) {
	m.res.Addf(code, severityOf(code), subject, format, args...)
}

// Measure implements sdk.Check. A TPM that is absent, busy or broken is a
// finding, never an error: tpm_available and tpm_quote_verified are always
// set.
func (c *check) Measure(ctx context.Context, req sdk.Request) (*sdk.Result, error) {
	log := req.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := workContext(ctx)
	defer cancel()
	m := &measurement{res: sdk.NewResult(), log: log}
	c.loadReference(m)
	verified := c.measure(ctx, m, req.Nonce)
	c.checkEventLog(m)
	m.res.Set(KeyAvailable, m.available)
	m.res.Set(KeyQuoteVerified, verified)
	return m.res, nil
}

// workContext keeps back part of the time left (a tenth, at most
// deadlineReserve) so that a TPM that does not answer is still reported
// before the daemon stops waiting.
func workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(time.Until(dl)/10, deadlineReserve)
	return context.WithDeadline(ctx, dl.Add(-max(reserve, 0)))
}

// measure takes one measurement into m and reports whether the quote
// verified and the PCRs match expected_pcrs.
func (c *check) measure(ctx context.Context, m *measurement, nonce []byte) bool {
	target := c.cfg.target()
	if c.conn == nil {
		conn, err := tpmio.Open(ctx, c.cfg.retry, "open "+target, c.open)
		if err != nil {
			c.reportOpen(m, target, err)
			return false
		}
		c.conn = conn
	}
	if !c.keepOpen() {
		defer c.closeConn()
	}
	m.tpm = tpmio.Bind(ctx, c.conn, c.cfg.retry)

	qualifying := nonce
	if len(qualifying) > maxQualifyingData {
		sum := sha256.Sum256(nonce)
		qualifying = sum[:]
	}

	var (
		pcrs  pcrValues
		vals  bankValues
		q     *quoteResult
		ak    *akKey
		moved bool
	)
	for attempt := 0; ; attempt++ {
		var ok bool
		vals, ok = c.readAll(m, target, attempt == 0)
		if !ok {
			return false
		}
		pcrs = vals[tpm2.TPMAlgSHA256]
		if attempt == 0 {
			c.flushStale(m)
		}
		if ak, ok = c.ensureAK(m); !ok {
			c.publishPCRs(m, pcrs)
			return false
		}
		if q, ak, ok = c.quote(m, ak, qualifying); !ok {
			c.publishPCRs(m, pcrs)
			return false
		}
		after, ok := c.readAll(m, target, false)
		if !ok {
			return false
		}
		moved = !after.equal(vals)
		if !moved || attempt >= c.cfg.retry.Retries {
			break
		}
		m.log.Debug("PCRs changed while quoting; quoting again", "attempt", attempt+1)
	}
	matched := c.publishPCRs(m, pcrs)

	qm := map[string]any{
		"attest":    base64.StdEncoding.EncodeToString(q.attest),
		"signature": base64.StdEncoding.EncodeToString(q.signature),
		"ak_public": base64.StdEncoding.EncodeToString(ak.public.Raw),
		"nonce":     hex.EncodeToString(qualifying),
	}
	m.res.Set(KeyAKName, hex.EncodeToString(ak.name))
	c.publishBanks(m, vals)
	rep := attest.Verify(q.attest, q.signature, ak.public, attest.Expected{Nonce: qualifying, PCRs: pcrs, Banks: vals.others()})
	for _, p := range rep.Problems {
		msg := p.Message
		if p.Code == attest.PCRDigestMismatch && moved {
			msg += " (the PCRs changed during every attempt to quote them)"
		}
		m.add("tpm."+string(p.Code), "quote", "%s", msg)
	}
	rolledBack := false
	if rep.SignatureValid && rep.Attest != nil {
		qm["clock"] = rep.Attest.Clock
		rolledBack = c.trackClock(m, hex.EncodeToString(ak.name), rep.Attest.Clock)
	}
	m.res.Set(KeyQuote, qm)
	if rep.Verified() {
		m.boot.quoted = vals
	}
	return rep.Verified() && matched && !rolledBack
}

// trackClock holds the clock of a quote whose signature verified, from the
// TPM identity id (the AK's hex name), to the identity's high-water mark,
// reporting a rollback, and keeps the marks in the state file when one is
// configured. It reports whether the clock went back.
func (c *check) trackClock(m *measurement, id string, ci attest.ClockInfo) bool {
	persist := c.cfg.stateFile != ""
	if persist && !c.stateLoaded {
		c.loadClockState(m)
	}
	msg := c.clock.observe(id, ci, time.Now().UTC())
	if msg != "" {
		m.add(CodeClockRollback, "clock", "TPM %s: its state was rolled back or replaced", msg)
	}
	if persist && c.stateLoaded {
		data, err := encodeState(c.clock.marks)
		if err == nil {
			err = writeState(c.cfg.stateFile, data)
		}
		if err != nil {
			m.add(CodeClockStateWriteFailed, c.cfg.stateFile,
				"TPM clock state file %s could not be written: %v; the clock is tracked in this plugin process only, so a rollback between attestations goes unnoticed", c.cfg.stateFile, err)
		}
	}
	return msg != ""
}

// loadClockState merges the state file's marks into the tracker, once per
// process (again after a Configure with another state_file). A missing
// folder is reported and tried again at the next verified quote; a file
// that cannot be read or parsed is reported, ignored and rewritten.
func (c *check) loadClockState(m *measurement) {
	path := c.cfg.stateFile
	marks, err := readState(path)
	var dirErr *errStateDir
	switch {
	case errors.As(err, &dirErr):
		m.add(CodeClockStateUnavailable, dirErr.dir,
			"TPM clock state folder %s %s: the clock is tracked in this plugin process only, so a rollback between attestations goes unnoticed (create the folder, or set state_file)", dirErr.dir, dirErr.what)
		return
	case err != nil:
		m.add(CodeClockStateInvalid, path,
			"TPM clock state file %s is unusable: %v; clock tracking restarts from this quote and the file is rewritten", path, err)
	default:
		for id, mk := range marks {
			c.clock.merge(id, mk)
		}
		m.log.Debug("TPM clock state loaded", "file", path, "tpms", len(marks))
	}
	c.stateLoaded = true
	if removed, err := removeStaleTemps(path); err != nil {
		m.log.Warn("could not remove a temporary file left beside the TPM clock state", "file", path, "error", err)
	} else if len(removed) > 0 {
		m.log.Info("removed temporary files left beside the TPM clock state by an interrupted write", "file", path, "removed", removed)
	}
}

// reportOpen turns a failure to open the TPM into a finding.
func (c *check) reportOpen(m *measurement, target string, err error) {
	switch {
	case errors.Is(err, tpmio.ErrAbsent):
		sev := severityOf(CodeUnavailable)
		note := ""
		if c.cfg.requireTPM {
			sev, note = sdk.SeverityCritical, " (the policy requires a TPM)"
		}
		m.res.Addf(CodeUnavailable, sev, target, "%v%s", err, note)
	case errors.Is(err, tpmio.ErrBusy), errors.Is(err, context.DeadlineExceeded):
		m.add(CodeBusy, target, "%v", err)
	default:
		c.addOpenFailed(m, target, err)
	}
}

func (c *check) addOpenFailed(m *measurement, target string, err error) {
	sev := severityOf(CodeOpenFailed)
	note := ""
	if c.cfg.requireTPM {
		sev, note = sdk.SeverityCritical, " (the policy requires a TPM)"
	}
	m.res.Addf(CodeOpenFailed, sev, target, "TPM unusable: %v%s", err, note)
}

// fail reports a TPM call that failed: busy or past the deadline as
// tpm.busy, anything else as code. A failure that is not the TPM's answer
// leaves the connection out of step, so it is closed.
func (c *check) fail(m *measurement, code, subject string, err error) {
	if tpmio.IsTPMError(err) || errors.Is(err, tpmio.ErrBusy) {
		// The TPM answered (refused, or asked to be asked again): it is
		// there and the connection is in step.
		m.available = true
	} else {
		c.reset()
	}
	if errors.Is(err, tpmio.ErrBusy) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		m.add(CodeBusy, subject, "%v", err)
		return
	}
	m.add(code, subject, "%v", err)
}

// readPCRs reads the selected PCRs. The first command of a connection that
// fails without a TPM answer means the TPM is unusable (tpm.open_failed).
func (c *check) readPCRs(m *measurement, target string, first bool) (pcrValues, bool) {
	v, err := ReadPCRs(m.tpm, m.sel)
	if err != nil {
		if first && !tpmio.IsTPMError(err) && !errors.Is(err, tpmio.ErrBusy) && !errors.Is(err, context.DeadlineExceeded) {
			c.reset()
			c.addOpenFailed(m, target, err)
			return nil, false
		}
		c.fail(m, CodePCRReadFailed, target, err)
		return nil, false
	}
	m.available = true
	return v, true
}

// publishPCRs records the PCR values and compares them with expected_pcrs,
// reporting whether all pinned values match.
func (c *check) publishPCRs(m *measurement, pcrs pcrValues) bool {
	out := make(map[string]string, len(pcrs))
	for p, v := range pcrs {
		out[strconv.Itoa(p)] = hex.EncodeToString(v)
	}
	m.res.Set(KeyPCRs, out)
	matched := true
	for _, p := range m.sel {
		want, pinned := c.cfg.expected[p]
		if !pinned {
			continue
		}
		if got := pcrs[p]; !bytes.Equal(got, want) {
			matched = false
			m.add(CodePCRMismatch, "pcr:"+strconv.Itoa(p), "PCR %d is %x, expected %x", p, got, want)
		}
	}
	return matched
}

// flushStale flushes transient objects left in a TPM without a resource
// manager, once per connection target, before the plugin creates its AK.
func (c *check) flushStale(m *measurement) {
	if c.flushedStale || c.resourceManaged() || c.ak != nil {
		return
	}
	n, err := flushTransients(m.tpm)
	if err != nil {
		m.log.Warn("could not flush stale transient objects; creating the AK may fail for want of object slots", "error", err)
		return
	}
	c.flushedStale = true
	if n > 0 {
		m.log.Info("flushed transient objects left in the TPM", "count", n)
	}
}

// ensureAK returns the attestation key, creating or loading it on first
// use.
func (c *check) ensureAK(m *measurement) (*akKey, bool) {
	if c.ak != nil && c.ak.transient && !c.keepOpen() {
		// The connection was closed since the key was created: make sure
		// the handle still holds this key and not another client's object
		// (swtpm restarted and someone else created one).
		if cur, err := loadAK(m.tpm, uint32(c.ak.handle)); err != nil || !bytes.Equal(cur.name, c.ak.name) {
			m.log.Debug("attestation key gone from the TPM; creating it again")
			c.ak = nil
		}
	}
	if c.ak != nil {
		return c.ak, true
	}
	var (
		ak  *akKey
		err error
	)
	subject := "ak"
	if c.cfg.akHandle != 0 {
		subject = fmt.Sprintf("ak:0x%08x", c.cfg.akHandle)
		ak, err = loadAK(m.tpm, c.cfg.akHandle)
	} else {
		ak, err = createAK(m.tpm, c.cfg.akAlg)
	}
	if err != nil {
		if errors.Is(err, errUnsuitable) {
			m.add(CodeAKUnsuitable, subject, "%v", err)
			return nil, false
		}
		c.fail(m, CodeAKFailed, subject, err)
		return nil, false
	}
	m.log.Debug("attestation key ready", "handle", fmt.Sprintf("0x%08x", uint32(ak.handle)), "name", hex.EncodeToString(ak.name))
	c.ak = ak
	return ak, true
}

// quote quotes the selected PCRs and returns the quote with the key that
// signed it. A transient AK that the TPM no longer knows (flushed by a TPM
// reset) is created again, once.
func (c *check) quote(m *measurement, ak *akKey, nonce []byte) (*quoteResult, *akKey, bool) {
	q, err := quote(m.tpm, ak, m.sel, nonce, c.cfg.banks...)
	if err != nil && ak.transient && tpmio.IsTPMError(err) {
		m.log.Info("quote with the attestation key failed; creating the key again", "error", err)
		c.ak = nil
		fresh, ok := c.ensureAK(m)
		if !ok {
			return nil, nil, false
		}
		ak = fresh
		q, err = quote(m.tpm, ak, m.sel, nonce, c.cfg.banks...)
	}
	if err != nil {
		c.fail(m, CodeQuoteFailed, "quote", err)
		return nil, nil, false
	}
	return q, ak, true
}

// readAll reads the selected PCRs of the SHA-256 bank and of every other
// bank quoted (config banks).
func (c *check) readAll(m *measurement, target string, first bool) (bankValues, bool) {
	pcrs, ok := c.readPCRs(m, target, first)
	if !ok {
		return nil, false
	}
	out := bankValues{tpm2.TPMAlgSHA256: pcrs}
	for _, h := range c.cfg.banks {
		v, err := readBank(m.tpm, h, m.sel)
		if err != nil {
			c.fail(m, CodePCRReadFailed, target, err)
			return nil, false
		}
		out[h] = v
	}
	return out, true
}

// publishBanks records the values of the banks quoted besides SHA-256, so
// that a verifier can check the quote's PCR digest.
func (c *check) publishBanks(m *measurement, vals bankValues) {
	if len(c.cfg.banks) == 0 {
		return
	}
	out := map[string]map[string]string{}
	for _, h := range c.cfg.banks {
		name := string(bankName(h))
		out[name] = map[string]string{}
		for p, v := range vals[h] {
			out[name][strconv.Itoa(p)] = hex.EncodeToString(v)
		}
	}
	m.res.Set(KeyPCRBanks, out)
}

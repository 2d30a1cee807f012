package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func (a *app) status(args []string) int {
	fs := a.flagSet("status", "[--json]",
		"Shows the attestation state, score, counters, each check (plugin) and every finding\n"+
			"above info, from GET /api/v1/attest and GET /api/security/status.")
	asJSON := fs.Bool("json", false, `print the raw answers as {"attest": ..., "status": ...}`)
	a.clientFlags(fs, 10*time.Second)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageError(fs, "status takes no arguments")
	}
	if _, err := a.baseURL(); err != nil {
		return a.usageError(fs, "%v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), a.requestTimeout(10*time.Second))
	defer cancel()
	var att apitypes.AttestResponse
	attRaw, err := a.getJSON(ctx, "/api/v1/attest", &att)
	if err != nil {
		return a.fail(exitFail, "%v", err)
	}
	var st apitypes.StatusResponse
	stRaw, err := a.getJSON(ctx, "/api/security/status", &st)
	if err != nil {
		return a.fail(exitFail, "%v", err)
	}
	if *asJSON {
		fmt.Fprintf(a.stdout, "{\"attest\":%s,\"status\":%s}\n", bytes.TrimSpace(attRaw), bytes.TrimSpace(stRaw))
		return exitOK
	}
	var b *bundle.Bundle
	if len(att.Bundle) > 0 && !bytes.Equal(bytes.TrimSpace(att.Bundle), []byte("null")) {
		b = new(bundle.Bundle)
		if err := json.Unmarshal(att.Bundle, b); err != nil {
			return a.fail(exitFail, "the attestor's bundle does not decode: %v", err)
		}
	}
	writeStatus(a.stdout, st, b, time.Now())
	return exitOK
}

// writeStatus renders the status as tables: the summary, the checks, and
// the findings above info.
func writeStatus(out io.Writer, st apitypes.StatusResponse, b *bundle.Bundle, now time.Time) {
	writeSummary(out, st, b, now)
	writeChecks(out, mergeChecks(st.Plugins, b))
	if b != nil {
		writeFindings(out, b.Failures)
	}
}

// writeSummary writes the state, the counters and what was measured, one
// row each.
func writeSummary(out io.Writer, st apitypes.StatusResponse, b *bundle.Bundle, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(w, "%s\t%s\n", k, clean(fmt.Sprintf(format, args...)))
	}

	row("State:", "%s (score %d)", st.AttestationState, st.Score)
	last := "never (pending)"
	if st.LastAttested != nil {
		last = *st.LastAttested
		if t, err := time.Parse(time.RFC3339, last); err == nil {
			last += " (" + ago(now.Sub(t)) + ")"
		}
	}
	row("Last attested:", "%s", last)
	writeLatch(row, st.Latched, now)
	row("Attestations:", "%d run: %d degraded, %d failed; %d by refresh", st.AttestCount, st.DegradeCount, st.FailCount, st.RefreshCount)
	tpm, secureBoot := measuredHardware(st, b)
	row("TPM:", "%s", tpm)
	row("Secure Boot:", "%s", secureBoot)
	row("Services:", "%d digested", st.ServiceCount)
	row("Policy digest:", "%s", orDash(st.PolicyDigest))
	row("Deployment:", "%s", orDash(st.DeploymentDigest))
	row("Failures:", "%d", st.FailureCount)
	if b != nil {
		hmac := "bundle_hmac"
		if b.BundleHMAC == "" {
			hmac = "no bundle_hmac (UNSIGNED)"
		}
		row("Bundle:", "sequence %d, %s, %s", b.Sequence, b.Timestamp, hmac)
		// Not verified here (status needs no key): verify-bundle --pubkey.
		row("Signed by:", "%s", signerText(b.BundleSignature))
	}
	w.Flush()
}

// measuredHardware says what the TPM and Secure Boot rows show. The
// bundle, when there is one, tells "not measured" (null) apart from false.
func measuredHardware(st apitypes.StatusResponse, b *bundle.Bundle) (tpm, secureBoot string) {
	tpm = "absent"
	if st.TPMAvailable {
		tpm = "available, quote not verified"
		if st.TPMQuoteVerified {
			tpm = "available, quote verified"
		}
	}
	secureBoot = onOff(st.SecureBoot)
	if b == nil {
		return tpm, secureBoot
	}
	if b.TPMAvailable == nil {
		tpm = "not measured"
	}
	if b.BootMeasurements.SecureBoot == nil {
		secureBoot = "not measured"
	}
	if hasCode(b, "secureboot.unavailable") { // no UEFI or no efivarfs: off is not a setting here
		secureBoot = "unknown (no UEFI variables: secureboot.unavailable)"
	}
	return tpm, secureBoot
}

// writeChecks writes one row per check.
func writeChecks(out io.Writer, checks []checkRow) {
	fmt.Fprintln(out)
	if len(checks) == 0 {
		fmt.Fprintln(out, "No checks have run yet.")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tVERSION\tDURATION\tFINDINGS\tFAULT")
	for _, c := range checks {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", clean(c.name), clean(orDash(c.version)), c.duration, c.findings, clean(orDash(c.fault)))
	}
	w.Flush()
}

// writeFindings writes the findings above info, the most severe first.
func writeFindings(out io.Writer, failures []bundle.Failure) {
	var findings []bundle.Failure
	for _, f := range failures {
		if f.Severity > sdk.SeverityInfo {
			findings = append(findings, f)
		}
	}
	fmt.Fprintln(out)
	if len(findings) == 0 {
		fmt.Fprintln(out, "No findings above info.")
		return
	}
	sort.SliceStable(findings, func(i, j int) bool { return findings[i].Severity > findings[j].Severity })
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEVERITY\tCODE\tPLUGIN\tSUBJECT\tMESSAGE")
	for _, f := range findings {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Severity, clean(f.Code), clean(orDash(f.Plugin)), clean(orDash(f.Subject)), clean(f.Message))
	}
	w.Flush()
}

// signerText names the key of a bundle_signature, as status shows it.
func signerText(s *bundle.Signature) string {
	if s == nil {
		return `nobody: no bundle_signature (signing_key_path is "" or its key was unusable: core.signing_key)`
	}
	return signatureText(s) + " (bundle_signature; check it: attestctl verify-bundle --pubkey)"
}

// ago says how long ago d was, coarsely.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future: check the clocks"
	case d < 48*time.Hour:
		return d.Round(time.Second).String() + " ago"
	default:
		return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
	}
}

type checkRow struct {
	name, version, fault string
	duration             time.Duration
	findings             int
}

// mergeChecks lists the checks of the bundle (every plugin that ran or
// should have), with the fault the status reports for each, then any
// plugin the status knows that the bundle does not.
func mergeChecks(plugins []apitypes.PluginReport, b *bundle.Bundle) []checkRow {
	byName := map[string]apitypes.PluginReport{}
	for _, p := range plugins {
		byName[p.Name] = p
	}
	var rows []checkRow
	seen := map[string]bool{}
	if b != nil {
		for name, c := range b.Checks {
			r := checkRow{name: name, duration: time.Duration(c.DurationMS) * time.Millisecond, findings: len(c.Findings)}
			if c.Version != nil {
				r.version = *c.Version
			}
			if p, ok := byName[name]; ok {
				r.fault = p.Fault
			}
			rows = append(rows, r)
			seen[name] = true
		}
	}
	for _, p := range plugins {
		if seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		rows = append(rows, checkRow{name: p.Name, version: p.Version, fault: p.Fault, findings: p.Findings,
			duration: time.Duration(p.DurationSeconds * float64(time.Second)).Round(time.Millisecond)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	return rows
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean replaces control characters (terminal escapes, tabs, newlines) in
// text that comes from plugins, so that it cannot break the table or the
// terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

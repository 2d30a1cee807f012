package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/verdict"
	"github.com/secure-ai/runtime-attestor/policy"
)

func (a *app) keygen(args []string) int {
	fs := a.flagSet("keygen", "--out FILE [--pub FILE] [--type ed25519|p256] [--if-missing]",
		"Creates the attestor's signing key (signing_key_path): a new private key in\n"+
			"PKCS#8 PEM at FILE, mode 0600, and its public key in PEM at FILE.pub (or\n"+
			"--pub), mode 0644, for verifiers (verify-bundle --pubkey, gate --pubkey).\n"+
			"An existing file is never replaced. Run it as the attestor's user, or chown\n"+
			"the key to that user. Ed25519 by default; p256 makes an ECDSA P-256 key\n"+
			"(ES256) for relying parties that do not take EdDSA.\n"+
			"--if-missing (the unit's runtime-attestor-keygen): keep a usable key at FILE\n"+
			"(writing FILE.pub from it when missing) and exit 0; a FILE.pub without FILE\n"+
			"is an error (the identity verifiers pinned is gone), never a new key.")
	out := fs.String("out", "", "the private key file to create (required)")
	pub := fs.String("pub", "", "the public key file to create (default FILE.pub)")
	kind := fs.String("type", identity.KeyEd25519, "key type: ed25519 or p256")
	ifMissing := fs.Bool("if-missing", false, "keep an existing usable key instead of failing")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageError(fs, "keygen takes no arguments")
	}
	if *out == "" {
		return a.usageError(fs, "--out is required")
	}
	if *kind != identity.KeyEd25519 && *kind != identity.KeyP256 {
		return a.usageError(fs, "--type %q: want ed25519 or p256", *kind)
	}
	if *pub == "" {
		*pub = *out + ".pub"
	}
	if *ifMissing {
		s, created, err := identity.Ensure(*kind, *out, *pub)
		if err != nil {
			return a.fail(exitFail, "keygen: %v", err)
		}
		if !created {
			fmt.Fprintf(a.stdout, "kept %s (%s); public key %s; key id %s\n", *out, s.Alg(), *pub, s.KeyID())
			return exitOK
		}
		fmt.Fprintf(a.stdout, "created %s (%s, mode 0600) and %s; key id %s\n", *out, s.Alg(), *pub, s.KeyID())
		return exitOK
	}
	s, err := identity.WriteNew(*kind, *out, *pub)
	if err != nil {
		return a.fail(exitUsage, "keygen: %v", err)
	}
	fmt.Fprintf(a.stdout, "created %s (%s, mode 0600) and %s; key id %s\n", *out, s.Alg(), *pub, s.KeyID())
	return exitOK
}

func (a *app) verifyEvidence(args []string) int {
	fs := a.flagSet("verify-evidence", "--ak FILE --nonce HEX [--pubkey FILE] [--max-age D] [--allow-degraded] [--export DIR] [--verdict-log FILE] [--verdict-pcr N] [EVIDENCE|-]",
		"Verifies the answer of GET /api/v1/evidence?nonce=HEX: that the TPM quote is\n"+
			"signed by the attestation key in --ak (PEM, pinned from GET /api/v1/ak on a\n"+
			"trusted first contact, never taken from the evidence), that its qualifying\n"+
			"data is SHA-256(nonce || SHA-256(JCS(bundle without signatures))) for the\n"+
			"nonce you chose (fresh, not replayed) and the bundle it carries (no field\n"+
			"changed), that it quotes exactly the listed PCRs with those values, and that\n"+
			"the bundle's state is attested (or degraded with --allow-degraded). With\n"+
			"--pubkey the bundle_signature is checked too; --max-age bounds the bundle's\n"+
			"age. --export DIR writes ak.pem, quote.msg, quote.sig, pcrs.bin and\n"+
			"qualification.hex for tpm2_checkquote (see docs/tpm.md).\n"+
			"When the evidence carries a verdict log (or --verdict-log names a copy of\n"+
			"one), it is replayed to the quoted value of the verdict PCR and the verdict\n"+
			"history since boot is printed; a log that does not replay fails.\n"+
			"Exit 0 when everything holds, 1 when a check fails, 2 for usage or I/O errors.")
	akFile := fs.String("ak", "", "PEM file holding the attestor's attestation key (required)")
	nonceHex := fs.String("nonce", "", "the nonce sent with the request, hex (required)")
	pubFile := fs.String("pubkey", "", "PEM file holding the attestor's public signing key")
	maxAge := fs.Duration("max-age", 0, "refuse a bundle older than this (0: any age)")
	degraded := fs.Bool("allow-degraded", false, "accept a degraded bundle too")
	export := fs.String("export", "", "folder to write the tpm2_checkquote input files to")
	verdictLog := fs.String("verdict-log", "", "a copy of the verdict log to replay instead of the one in the evidence")
	verdictPCR := fs.Int("verdict-pcr", policy.DefaultVerdictPCR, "the verdict PCR, when the evidence does not name it")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch {
	case *akFile == "":
		return a.usageError(fs, "--ak is required")
	case *nonceHex == "":
		return a.usageError(fs, "--nonce is required")
	case len(pos) > 1:
		return a.usageError(fs, "verify-evidence takes at most one file")
	}
	nonce, err := evidence.ParseNonce(*nonceHex)
	if err != nil {
		return a.usageError(fs, "--nonce: %v", err)
	}
	akRaw, err := os.ReadFile(*akFile)
	if err != nil {
		return a.fail(exitUsage, "read AK: %v", err)
	}
	ak, err := identity.ParsePublicPEM(akRaw)
	if err != nil {
		return a.fail(exitUsage, "AK %s: %v", *akFile, err)
	}
	v, code := a.loadVerifier("", *pubFile, *maxAge)
	if code != exitOK {
		return code
	}
	src := "-"
	if len(pos) == 1 {
		src = pos[0]
	}
	raw, err := a.readInput(src, maxBundle)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	info, err := checkEvidence(raw, ak, nonce, v, *degraded)
	if err != nil {
		return a.fail(exitFail, "evidence NOT verified: %v", err)
	}
	if *export != "" {
		if err := exportCheckquote(*export, info.ev); err != nil {
			return a.fail(exitUsage, "export: %v", err)
		}
	}
	history, err := a.verdictHistory(info.ev, *verdictLog, *verdictPCR)
	if err != nil {
		return a.fail(exitFail, "evidence NOT verified: %v", err)
	}
	fmt.Fprintf(a.stdout, "evidence OK: TPM quote of %d PCRs bound to nonce and bundle; state %s, attestation %d at %s\n",
		len(info.ev.PCRs), clean(info.bundle.State), info.bundle.Sequence, clean(info.bundle.Timestamp))
	fmt.Fprint(a.stdout, history)
	return exitOK
}

// verdictHistory replays the verdict log (the file, else the evidence's)
// to the quoted verdict PCR and returns the history to print; "" when
// there is no log.
func (a *app) verdictHistory(v *evidence.Verified, file string, pcr int) (string, error) {
	e := v.Evidence
	var data []byte
	switch {
	case file != "":
		b, err := a.readInput(file, verdict.MaxLog)
		if err != nil {
			return "", err
		}
		data = b
	case e.VerdictLog != nil:
		data = []byte(*e.VerdictLog)
	default:
		return "", nil
	}
	if e.VerdictPCR != nil {
		pcr = *e.VerdictPCR
	}
	quoted, ok := v.PCRs[pcr]
	if !ok {
		return "", fmt.Errorf("the quote does not cover the verdict PCR %d", pcr)
	}
	recs, err := verdict.Check(data, pcr, quoted)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "verdict history: %d verdicts since boot replay PCR %d to the quoted value (times are the attestor's own)\n", len(recs), pcr)
	for _, r := range recs {
		c := r.Content
		fmt.Fprintf(&b, "  %s at %s (attestation %d)", clean(string(c.Verdict.State)), clean(c.Time), c.Sequence)
		if len(c.Verdict.FindingCodes) > 0 {
			codes := make([]string, len(c.Verdict.FindingCodes))
			for i, code := range c.Verdict.FindingCodes {
				codes[i] = clean(code)
			}
			fmt.Fprintf(&b, ": %s", strings.Join(codes, ", "))
		}
		b.WriteString("\n")
	}
	if cur, _, err := verdict.Of(e.Bundle); err == nil && len(recs) > 0 {
		d, _ := cur.Digest()
		last, _ := recs[len(recs)-1].Digest()
		if !bytes.Equal(d, last) {
			b.WriteString("  note: the bundle's verdict is not the last one measured (its measurement failed or is pending)\n")
		}
	}
	return b.String(), nil
}

type evidenceInfo struct {
	ev     *evidence.Verified
	bundle bundleInfo
}

// checkEvidence verifies evidence raw and the bundle it carries.
func checkEvidence(raw []byte, ak any, nonce []byte, v *bundleVerifier, allowDegraded bool) (evidenceInfo, error) {
	ev, err := evidence.Verify(raw, ak, nonce)
	if err != nil {
		return evidenceInfo{}, err
	}
	info, err := v.check(ev.Evidence.Bundle, time.Now())
	if err != nil {
		return evidenceInfo{}, err
	}
	switch {
	case info.State == "attested":
	case info.State == "degraded" && allowDegraded:
	default:
		return evidenceInfo{}, fmt.Errorf("the quote is genuine but the bundle's state is %s, not attested", clean(orDash(info.State)))
	}
	return evidenceInfo{ev: ev, bundle: info}, nil
}

// exportCheckquote writes the tpm2_checkquote inputs of verified evidence.
func exportCheckquote(dir string, v *evidence.Verified) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	e := v.Evidence
	files := []struct {
		name string
		data []byte
	}{
		{"ak.pem", []byte(e.AK.PEM)},
		{"quote.msg", e.Quote.Attest},
		{"quote.sig", e.Quote.Signature},
		{"pcrs.bin", evidence.TPM2ToolsPCRs(v.PCRs)},
		{"qualification.hex", []byte(e.QualifyingData + "\n")},
	}
	var errs []error
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// randomNonce returns a fresh 32-byte nonce in hex.
func randomNonce() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

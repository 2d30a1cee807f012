package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
)

func (a *app) keygen(args []string) int {
	fs := a.flagSet("keygen", "--out FILE [--pub FILE] [--type ed25519|p256]",
		"Creates the attestor's signing key (signing_key_path): a new private key in\n"+
			"PKCS#8 PEM at FILE, mode 0600, and its public key in PEM at FILE.pub (or\n"+
			"--pub), mode 0644, for verifiers (verify-bundle --pubkey, gate --pubkey).\n"+
			"An existing file is never replaced. Run it as the attestor's user, or chown\n"+
			"the key to that user. Ed25519 by default; p256 makes an ECDSA P-256 key\n"+
			"(ES256) for relying parties that do not take EdDSA.")
	out := fs.String("out", "", "the private key file to create (required)")
	pub := fs.String("pub", "", "the public key file to create (default FILE.pub)")
	kind := fs.String("type", identity.KeyEd25519, "key type: ed25519 or p256")
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
	s, err := identity.WriteNew(*kind, *out, *pub)
	if err != nil {
		return a.fail(exitUsage, "keygen: %v", err)
	}
	fmt.Fprintf(a.stdout, "created %s (%s, mode 0600) and %s; key id %s\n", *out, s.Alg(), *pub, s.KeyID())
	return exitOK
}

func (a *app) verifyEvidence(args []string) int {
	fs := a.flagSet("verify-evidence", "--ak FILE --nonce HEX [--pubkey FILE] [--max-age D] [--allow-degraded] [--export DIR] [EVIDENCE|-]",
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
			"Exit 0 when everything holds, 1 when a check fails, 2 for usage or I/O errors.")
	akFile := fs.String("ak", "", "PEM file holding the attestor's attestation key (required)")
	nonceHex := fs.String("nonce", "", "the nonce sent with the request, hex (required)")
	pubFile := fs.String("pubkey", "", "PEM file holding the attestor's public signing key")
	maxAge := fs.Duration("max-age", 0, "refuse a bundle older than this (0: any age)")
	degraded := fs.Bool("allow-degraded", false, "accept a degraded bundle too")
	export := fs.String("export", "", "folder to write the tpm2_checkquote input files to")
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
	fmt.Fprintf(a.stdout, "evidence OK: TPM quote of %d PCRs bound to nonce and bundle; state %s, attestation %d at %s\n",
		len(info.ev.PCRs), clean(info.bundle.State), info.bundle.Sequence, clean(info.bundle.Timestamp))
	return exitOK
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

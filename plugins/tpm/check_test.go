package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// These tests run the check against the go-tpm-tools TPM 2.0 simulator
// (Microsoft's reference implementation, in process), over the SDK's gRPC
// server code. They share the simulator one after another: none is
// parallel.

func TestPCRRead(t *testing.T) {
	sim := openSim(t)
	tpm := direct(sim)
	extend(t, tpm, 2, digestOf("option ROM"))
	extend(t, tpm, 16, digestOf("debug"))
	extend(t, tpm, 23, digestOf("application"))

	all := make([]int, 24)
	for i := range all {
		all[i] = i
	}
	for i, tc := range []struct {
		name string
		cfg  map[string]any
		want []int
	}{
		{"default selection 0-7", nil, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"all 24 PCRs, more than one TPM2_PCR_Read answers", map[string]any{"pcrs": all}, all},
		{"pinned PCR joins the selection", map[string]any{"pcrs": []int{2}, "expected_pcrs": map[string]string{"16": hexs(extended(make([]byte, 32), digestOf("debug")))}}, []int{2, 16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _ := simHarness(t, sim, tc.cfg)
			r, m := mustMeasure(t, h, newNonce(t))
			if len(r.Findings) != 0 {
				t.Fatalf("Test %d: findings %+v", i, r.Findings)
			}
			if !m.available || !m.verified {
				t.Fatalf("Test %d: tpm_available %v, tpm_quote_verified %v; want both true", i, m.available, m.verified)
			}
			independent, err := ReadPCRs(tpm, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.pcrs) != len(tc.want) {
				t.Fatalf("Test %d: got PCRs %v, want %v", i, m.pcrs, tc.want)
			}
			for _, p := range tc.want {
				if got := m.pcrs[strconv.Itoa(p)]; got != hexs(independent[p]) {
					t.Errorf("Test %d: PCR %d = %s, TPM says %x", i, p, got, independent[p])
				}
			}
		})
	}
	// Values computed from the extends, not read back: PCR 2 started at
	// zero, PCR 23 too (resettable, locality 0), PCR 0 was never extended.
	h, _, _ := simHarness(t, sim, map[string]any{"pcrs": []int{0, 2, 23}})
	_, m := mustMeasure(t, h, newNonce(t))
	zero := make([]byte, 32)
	for p, want := range map[string][]byte{"0": zero, "2": extended(zero, digestOf("option ROM")), "23": extended(zero, digestOf("application"))} {
		if m.pcrs[p] != hexs(want) {
			t.Errorf("PCR %s = %s, want %x", p, m.pcrs[p], want)
		}
	}
}

func TestExpectedMatch(t *testing.T) {
	sim := openSim(t)
	extend(t, direct(sim), 4, digestOf("boot loader"))
	zero := make([]byte, 32)
	h, _, _ := simHarness(t, sim, map[string]any{
		"require_tpm": true,
		"expected_pcrs": map[string]string{
			"0": hexs(zero),
			// Upper case is accepted.
			"4": strings.ToUpper(hexs(extended(zero, digestOf("boot loader")))),
		},
	})
	nonce := newNonce(t)
	r, m := mustMeasure(t, h, nonce)
	only(t, r, nil)
	if !m.available || !m.verified {
		t.Fatalf("tpm_available %v, tpm_quote_verified %v; want both true", m.available, m.verified)
	}
	if m.quote == nil || m.quote.Nonce != hexs(nonce) {
		t.Fatalf("quote %+v does not carry the nonce %x", m.quote, nonce)
	}
	var name string
	if err := r.Decode(KeyAKName, &name); err != nil || len(name) != 68 || !strings.HasPrefix(name, "000b") {
		t.Fatalf("ak_name %q (%v), want a SHA-256 TPM name", name, err)
	}
}

func TestExtendThenMismatch(t *testing.T) {
	sim := openSim(t)
	tpm := direct(sim)
	before, err := ReadPCRs(tpm, []int{7})
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := simHarness(t, sim, map[string]any{"expected_pcrs": map[string]string{"7": hexs(before[7])}})
	if r, m := mustMeasure(t, h, newNonce(t)); len(r.Findings) != 0 || !m.verified {
		t.Fatalf("before the extend: findings %+v, verified %v", r.Findings, m.verified)
	}

	extend(t, tpm, 7, digestOf("a Secure Boot variable changed"))
	after := extended(before[7], digestOf("a Secure Boot variable changed"))
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodePCRMismatch: sdk.SeverityHigh})
	f := r.Find(CodePCRMismatch)[0]
	if f.Subject != "pcr:7" || !strings.Contains(f.Message, hexs(before[7])) || !strings.Contains(f.Message, hexs(after)) {
		t.Errorf("finding %+v should name pcr:7, the expected %x and the actual %x", f, before[7], after)
	}
	if m.verified {
		t.Error("tpm_quote_verified is true with a PCR that differs from expected_pcrs")
	}
	if !m.available || m.pcrs["7"] != hexs(after) {
		t.Errorf("tpm_available %v, PCR 7 %s; want true, %x", m.available, m.pcrs["7"], after)
	}
}

// TestQuoteVerified checks the quote the plugin publishes independently of
// the attest package: go-tpm parses the key and the signature, Go's crypto
// verifies it, and the PCR digest is recomputed from the published values.
func TestQuoteVerified(t *testing.T) {
	for _, alg := range []string{"ecc", "rsa"} {
		t.Run(alg, func(t *testing.T) {
			sim := openSim(t)
			extend(t, direct(sim), 1, digestOf("config"))
			h, _, _ := simHarness(t, sim, map[string]any{"ak": map[string]any{"algorithm": alg}})
			nonce := newNonce(t)
			r, m := mustMeasure(t, h, nonce)
			only(t, r, nil)
			if !m.verified || m.quote == nil {
				t.Fatalf("tpm_quote_verified %v, quote %v", m.verified, m.quote)
			}
			pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](m.quote.AKPublic)
			if err != nil {
				t.Fatal(err)
			}
			key, err := tpm2.Pub(*pub)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](m.quote.Signature)
			if err != nil {
				t.Fatal(err)
			}
			digest := sha256.Sum256(m.quote.Attest)
			switch alg {
			case "ecc":
				es, err := sig.Signature.ECDSA()
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.Verify(key.(*ecdsa.PublicKey), digest[:], new(big.Int).SetBytes(es.SignatureR.Buffer), new(big.Int).SetBytes(es.SignatureS.Buffer)) {
					t.Fatal("ECDSA signature does not verify")
				}
			case "rsa":
				rs, err := sig.Signature.RSASSA()
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPKCS1v15(key.(*rsa.PublicKey), crypto.SHA256, digest[:], rs.Sig.Buffer); err != nil {
					t.Fatal(err)
				}
			}
			quoted, err := tpm2.Unmarshal[tpm2.TPMSAttest](m.quote.Attest)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(quoted.ExtraData.Buffer, nonce) {
				t.Fatalf("extraData %x, nonce %x", quoted.ExtraData.Buffer, nonce)
			}
			qi, err := quoted.Attested.Quote()
			if err != nil {
				t.Fatal(err)
			}
			d := sha256.New()
			for p := range 8 {
				b, _ := hex.DecodeString(m.pcrs[strconv.Itoa(p)])
				d.Write(b)
			}
			if !bytes.Equal(d.Sum(nil), qi.PCRDigest.Buffer) {
				t.Fatal("the quote's PCR digest is not the digest of the published PCRs")
			}
			if m.quote.Clock == nil || m.quote.Clock.Clock != quoted.ClockInfo.Clock {
				t.Fatalf("published clock %+v, quote says %+v", m.quote.Clock, quoted.ClockInfo)
			}
		})
	}
}

// quoteOffset is where TPMS_ATTEST starts in a TPM2_Quote response with an
// authorization session: header (10), parameterSize (4), TPM2B size (2).
const quoteOffset = 16

// attestClockOffset is where clockInfo starts in a quote by an AK with a
// SHA-256 name and a 32-byte nonce: magic 4, type 2, qualifiedSigner 2+34,
// extraData 2+32.
const attestClockOffset = 4 + 2 + 36 + 34

func TestTamperedQuote(t *testing.T) {
	sim := openSim(t)
	h, ip, _ := simHarness(t, sim, nil)
	// Someone on the bus moves the clock in the signed structure back by
	// one millisecond to hide a rollback.
	ip.set(nil, func(cmd, rsp []byte) []byte {
		if commandCode(cmd) != tpm2.TPMCCQuote {
			return rsp
		}
		out := bytes.Clone(rsp)
		out[quoteOffset+attestClockOffset+7]--
		return out
	})
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeQuoteSignatureInvalid: sdk.SeverityCritical})
	if m.verified || !m.available {
		t.Fatalf("tpm_quote_verified %v, tpm_available %v; want false, true", m.verified, m.available)
	}
	if m.quote == nil || m.quote.Clock != nil {
		t.Fatalf("quote %+v: the clock of an unverified quote must not be published as the TPM's", m.quote)
	}

	// Without the interposer the next quote verifies again.
	ip.set(nil, nil)
	if r, m := mustMeasure(t, h, newNonce(t)); len(r.Findings) != 0 || !m.verified {
		t.Fatalf("findings %+v, verified %v", r.Findings, m.verified)
	}
}

// TestTamperedQuoteBytes alters real quote bytes from the simulator and
// runs them through the verifier: each alteration is named by its own code.
func TestTamperedQuoteBytes(t *testing.T) {
	sim := openSim(t)
	tpm := direct(sim)
	ak, err := createAK(tpm, akECC)
	if err != nil {
		t.Fatal(err)
	}
	pcrs := []int{0, 1, 2, 3}
	nonce := newNonce(t)
	q, err := quote(tpm, ak, pcrs, nonce)
	if err != nil {
		t.Fatal(err)
	}
	values, err := ReadPCRs(tpm, pcrs)
	if err != nil {
		t.Fatal(err)
	}
	want := attest.Expected{Nonce: nonce, PCRs: values}
	if rep := attest.Verify(q.attest, q.signature, ak.public, want); !rep.Verified() {
		t.Fatalf("untouched quote: %+v", rep.Problems)
	}
	digestAt := len(q.attest) - 32
	for i, tc := range []struct {
		name   string
		attest func([]byte)
		sig    func([]byte)
		want   []attest.Code
	}{
		{"magic", func(b []byte) { b[0] ^= 1 }, nil, []attest.Code{attest.SignatureInvalid, attest.BadMagic}},
		{"type", func(b []byte) { b[5] = 0x17 }, nil, []attest.Code{attest.SignatureInvalid, attest.BadType}},
		{"nonce", func(b []byte) { b[4+2+36+2] ^= 0x80 }, nil, []attest.Code{attest.SignatureInvalid, attest.NonceMismatch}},
		{"reset count", func(b []byte) { b[attestClockOffset+8+3]++ }, nil, []attest.Code{attest.SignatureInvalid}},
		{"selection", func(b []byte) { b[digestAt-3] |= 0x80 }, nil, []attest.Code{attest.SignatureInvalid, attest.SelectionMismatch}},
		{"pcr digest", func(b []byte) { b[digestAt] ^= 0xff }, nil, []attest.Code{attest.SignatureInvalid, attest.PCRDigestMismatch}},
		{"signature S", nil, func(b []byte) { b[len(b)-1] ^= 1 }, []attest.Code{attest.SignatureInvalid}},
		{"signature hash", nil, func(b []byte) { b[3] = 0x0c }, []attest.Code{attest.SignatureInvalid}},
		{"signature truncated", nil, func(b []byte) { b[len(b)-33] = 0x40 }, []attest.Code{attest.Malformed}},
		{"attest truncated", func(b []byte) { b[4+2+1] = 0xff }, nil, []attest.Code{attest.SignatureInvalid, attest.Malformed}},
	} {
		a, s := bytes.Clone(q.attest), bytes.Clone(q.signature)
		if tc.attest != nil {
			tc.attest(a)
		}
		if tc.sig != nil {
			tc.sig(s)
		}
		rep := attest.Verify(a, s, ak.public, want)
		if rep.Verified() || rep.SignatureValid {
			t.Errorf("Test %d (%s): tampered quote verified", i, tc.name)
		}
		var got []attest.Code
		for _, p := range rep.Problems {
			got = append(got, p.Code)
		}
		if !sameCodes(got, tc.want) {
			t.Errorf("Test %d (%s): problems %v, want %v", i, tc.name, rep.Problems, tc.want)
		}
	}
}

func sameCodes(a, b []attest.Code) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWrongNonce(t *testing.T) {
	sim := openSim(t)
	h, ip, _ := simHarness(t, sim, nil)

	// An interposer swaps the nonce in TPM2_Quote: the TPM signs a valid
	// quote, but not for this request.
	nonce, other := newNonce(t), newNonce(t)
	ip.set(func(cmd []byte) []byte {
		if commandCode(cmd) != tpm2.TPMCCQuote {
			return cmd
		}
		return bytes.Replace(cmd, nonce, other, 1)
	}, nil)
	r, m := mustMeasure(t, h, nonce)
	only(t, r, map[string]sdk.Severity{CodeQuoteNonceMismatch: sdk.SeverityCritical})
	f := r.Find(CodeQuoteNonceMismatch)[0]
	if !strings.Contains(f.Message, hexs(other)) || !strings.Contains(f.Message, hexs(nonce)) {
		t.Errorf("message %q should name both nonces", f.Message)
	}
	if m.verified {
		t.Fatal("tpm_quote_verified with a wrong nonce")
	}

	// A replay: the interposer answers TPM2_Quote with the response it
	// recorded for an earlier request.
	ip.set(nil, nil)
	var recorded atomic.Pointer[[]byte]
	ip.set(nil, func(cmd, rsp []byte) []byte {
		if commandCode(cmd) == tpm2.TPMCCQuote {
			b := bytes.Clone(rsp)
			recorded.Store(&b)
		}
		return rsp
	})
	if r, _ := mustMeasure(t, h, newNonce(t)); len(r.Findings) != 0 {
		t.Fatalf("recording run: %+v", r.Findings)
	}
	ip.set(nil, func(cmd, rsp []byte) []byte {
		if commandCode(cmd) == tpm2.TPMCCQuote {
			return *recorded.Load()
		}
		return rsp
	})
	r, m = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeQuoteNonceMismatch: sdk.SeverityCritical})
	if m.verified {
		t.Fatal("tpm_quote_verified on a replayed quote")
	}

	// The verifier on real bytes: the same quote checked against another
	// nonce fails on the nonce alone; its signature is still good.
	tpm := direct(sim)
	ak, err := createAK(tpm, akECC)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quote(tpm, ak, []int{0}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	values, err := ReadPCRs(tpm, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	rep := attest.Verify(q.attest, q.signature, ak.public, attest.Expected{Nonce: other, PCRs: values})
	if !rep.SignatureValid || len(rep.Problems) != 1 || !rep.Has(attest.NonceMismatch) {
		t.Fatalf("report %+v, want a valid signature and only a nonce mismatch", rep)
	}
}

func TestWrongKey(t *testing.T) {
	sim := openSim(t)
	tpm := direct(sim)
	h, ip, _ := simHarness(t, sim, nil)
	if r, _ := mustMeasure(t, h, newNonce(t)); len(r.Findings) != 0 {
		t.Fatalf("first run: %+v", r.Findings)
	}
	// A second restricted signing key in the TPM, under the owner
	// hierarchy: a quote it signs is a real TPM quote, but not by the AK.
	other, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(akTemplate(akECC))}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	// The interposer points TPM2_Quote at the other key.
	ip.set(func(cmd []byte) []byte {
		if commandCode(cmd) != tpm2.TPMCCQuote {
			return cmd
		}
		out := bytes.Clone(cmd)
		binary.BigEndian.PutUint32(out[10:14], uint32(other.ObjectHandle))
		return out
	}, nil)
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeQuoteSignatureInvalid: sdk.SeverityCritical})
	if m.verified {
		t.Fatal("tpm_quote_verified with a quote signed by another key")
	}

	// The verifier on real bytes: a good quote checked against another
	// key's public area fails on the signature alone.
	ak, err := createAK(tpm, akECC)
	if err != nil {
		t.Fatal(err)
	}
	nonce := newNonce(t)
	q, err := quote(tpm, ak, []int{0, 1}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.FlushContext{FlushHandle: ak.handle}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	values, err := ReadPCRs(tpm, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	rsaAK, err := createAK(tpm, akRSA)
	if err != nil {
		t.Fatal(err)
	}
	otherAK, err := newAK(other.ObjectHandle, other.OutPublic.Bytes(), other.Name.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []*akKey{otherAK, rsaAK} {
		rep := attest.Verify(q.attest, q.signature, wrong.public, attest.Expected{Nonce: nonce, PCRs: values})
		if rep.SignatureValid || len(rep.Problems) != 1 || !rep.Has(attest.SignatureInvalid) {
			t.Fatalf("key type 0x%04x: problems %+v, want only an invalid signature", wrong.public.Type, rep.Problems)
		}
	}
}

func TestAKUnsuitable(t *testing.T) {
	sim := openSim(t)
	tpm := direct(sim)
	// A persistent signing key that is not restricted: it would sign
	// anything, so its "quotes" prove nothing.
	tmpl := akTemplate(akECC)
	tmpl.ObjectAttributes.Restricted = false
	k, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tmpl)}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	const handle = 0x81010002
	if _, err := (tpm2.EvictControl{Auth: tpm2.TPMRHOwner, ObjectHandle: tpm2.NamedHandle{Handle: k.ObjectHandle, Name: k.Name}, PersistentHandle: handle}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	h, _, _ := simHarness(t, sim, map[string]any{"ak": map[string]any{"handle": "0x81010002"}})
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeAKUnsuitable: sdk.SeverityHigh})
	if r.Findings[0].Subject != "ak:0x81010002" || !strings.Contains(r.Findings[0].Message, "restricted") {
		t.Errorf("finding %+v should name the handle and the missing attribute", r.Findings[0])
	}
	if m.verified || !m.available || len(m.pcrs) != 8 {
		t.Errorf("verified %v, available %v, pcrs %v", m.verified, m.available, m.pcrs)
	}

	// A handle with nothing behind it.
	h, _, _ = simHarness(t, sim, map[string]any{"ak": map[string]any{"handle": "0x81010009"}})
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeAKFailed: sdk.SeverityHigh})
}

func TestPersistentAK(t *testing.T) {
	sim := openSim(t)
	tpm := direct(sim)
	k, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(akTemplate(akRSA))}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	const handle = 0x81010003
	if _, err := (tpm2.EvictControl{Auth: tpm2.TPMRHOwner, ObjectHandle: tpm2.NamedHandle{Handle: k.ObjectHandle, Name: k.Name}, PersistentHandle: handle}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	h, _, _ := simHarness(t, sim, map[string]any{"ak": map[string]any{"handle": "0x81010003"}})
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, nil)
	var name string
	if err := r.Decode(KeyAKName, &name); err != nil || name != hexs(k.Name.Buffer) {
		t.Fatalf("ak_name %s (%v), want the persistent key's %x", name, err, k.Name.Buffer)
	}
	if !m.verified {
		t.Fatal("not verified")
	}
}

func TestClockRollback(t *testing.T) {
	sim := openSim(t)
	h, _, _ := simHarness(t, sim, nil)
	_, first := mustMeasure(t, h, newNonce(t))
	if first.quote == nil || first.quote.Clock == nil {
		t.Fatal("no clock in the first quote")
	}

	// Two TPM Resets (reboots of the TPM): the reset count goes up, the
	// transient AK is flushed and must be created again. No rollback.
	for range 2 {
		if err := sim.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, nil)
	high := m.quote.Clock.ResetCount
	if high != first.quote.Clock.ResetCount+2 || !m.verified {
		t.Fatalf("after two resets: clock %+v (first %+v), verified %v", m.quote.Clock, first.quote.Clock, m.verified)
	}

	// The TPM is cleared behind the daemon's back (or its state replaced
	// by an older one): the reset count goes back to zero.
	if _, err := (tpm2.Clear{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)}}).Execute(direct(sim)); err != nil {
		t.Fatal(err)
	}
	r, m = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
	want := fmt.Sprintf("reset count went down from %d to 0", high)
	if f := r.Find(CodeClockRollback)[0]; !strings.Contains(f.Message, want) || f.Subject != "clock" {
		t.Errorf("finding %+v, want subject clock and %q", f, want)
	}
	if m.verified || m.quote.Clock.ResetCount != 0 {
		t.Fatalf("tpm_quote_verified %v, clock %+v after a rollback", m.verified, m.quote.Clock)
	}
	// The high-water mark stays: the finding repeats while the TPM is
	// behind.
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
}

// TestPCRsChangeWhileQuoting extends a PCR between the plugin's PCR read
// and its quote (as IMA does to PCR 10 all the time): the plugin sees the
// values move and quotes again instead of reporting a digest mismatch.
func TestPCRsChangeWhileQuoting(t *testing.T) {
	sim := openSim(t)
	h, ip, _ := simHarness(t, sim, nil)
	var quotes atomic.Int32
	ip.set(nil, func(cmd, rsp []byte) []byte {
		if commandCode(cmd) == tpm2.TPMCCQuote {
			if quotes.Add(1) == 1 {
				extend(t, direct(sim), 5, digestOf("late event"))
			}
		}
		return rsp
	})
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, nil)
	if quotes.Load() != 2 || !m.verified {
		t.Fatalf("%d quotes, verified %v; want 2 quotes and a verified one", quotes.Load(), m.verified)
	}
	if want := hexs(extended(make([]byte, 32), digestOf("late event"))); m.pcrs["5"] != want {
		t.Fatalf("PCR 5 = %s, want the value after the event %s", m.pcrs["5"], want)
	}
}

// TestBusy answers the plugin's commands with TPM_RC_RETRY, exactly the
// bytes a busy TPM sends, which the simulator cannot be made to do.
func TestBusy(t *testing.T) {
	sim := openSim(t)
	retry := []byte{0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x09, 0x22}
	for i, tc := range []struct {
		name     string
		busyFor  int // commands answered TPM_RC_RETRY before the TPM answers
		retries  int
		findings map[string]sdk.Severity
	}{
		{"busy twice, three retries", 2, 3, nil},
		{"busy for good", 1 << 30, 3, map[string]sdk.Severity{CodeBusy: sdk.SeverityHigh}},
		{"no retries", 1, 0, map[string]sdk.Severity{CodeBusy: sdk.SeverityHigh}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ip, _ := simHarness(t, sim, map[string]any{"retries": tc.retries, "retry_delay": "1ms"})
			var left atomic.Int64
			left.Store(int64(tc.busyFor))
			ip.set(nil, func(cmd, rsp []byte) []byte {
				if left.Add(-1) >= 0 {
					return retry
				}
				return rsp
			})
			r, m := mustMeasure(t, h, newNonce(t))
			only(t, r, tc.findings)
			if !m.available {
				t.Errorf("Test %d: a TPM that answers TPM_RC_RETRY is available", i)
			}
			if tc.findings != nil && !strings.Contains(r.Findings[0].Message, "TPM_RC_RETRY") {
				t.Errorf("Test %d: message %q should name TPM_RC_RETRY", i, r.Findings[0].Message)
			}
		})
	}
}

// TestRetryPolicy checks the retry layer on its own: it gives up after the
// configured number of retries with a *BusyError.
func TestRetryPolicy(t *testing.T) {
	sim := openSim(t)
	calls := 0 // RoundTrip runs on this goroutine
	ip := &interposer{inner: tpmio.FromReadWriter(sim)}
	ip.set(nil, func(_, rsp []byte) []byte {
		calls++
		return []byte{0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x09, 0x08} // TPM_RC_YIELDED
	})
	_, err := ReadPCRs(tpmio.Bind(t.Context(), ip, tpmio.Policy{Retries: 4}), []int{0})
	var be *tpmio.BusyError
	if !errors.As(err, &be) || !errors.Is(err, tpmio.ErrBusy) || be.Attempts != 5 || calls != 5 || !strings.Contains(err.Error(), "TPM_RC_YIELDED") {
		t.Fatalf("err %v after %d calls; want a BusyError after 5 attempts", err, calls)
	}
}

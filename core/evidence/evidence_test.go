package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/internal/tpmsim"
)

// The go-tpm-tools simulator is one per process: tests that use it
// (tpmsim.Open) do not run in parallel.

func testSigner(t testing.TB) *identity.Signer {
	t.Helper()
	s, err := identity.New(identity.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testBundle returns a signed attested bundle's JSON.
func testBundle(t testing.TB, s *identity.Signer) []byte { return testBundleIn(t, s, "attested") }

// testBundleIn returns a signed bundle's JSON in state st.
func testBundleIn(t testing.TB, s *identity.Signer, st state.State) []byte {
	t.Helper()
	b := bundle.Bundle{BundleVersion: bundle.Version, AttestorVersion: "test", Sequence: 7,
		Nonce: strings.Repeat("ab", 32), Timestamp: bundle.FormatTime(time.Now()), State: st}
	if err := b.SignWith(s); err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(bytes.Repeat([]byte{'k'}, 32)); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func nonceOf(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// evidenceFor quotes raw for nonce and returns the evidence JSON.
func evidenceFor(t *testing.T, tp *TPM, nonce, raw []byte) []byte {
	t.Helper()
	qd, digest, err := QualifyingData(nonce, raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := tp.Quote(context.Background(), qd)
	if err != nil {
		t.Fatalf("quote: %v", err)
	}
	out, err := json.Marshal(Build(nonce, raw, qd, digest, q))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pinned(t *testing.T, tp *TPM) AKPublic {
	t.Helper()
	ak, err := tp.AK(context.Background())
	if err != nil {
		t.Fatalf("AK: %v", err)
	}
	return ak
}

func akKey(t *testing.T, ak AKPublic) any {
	t.Helper()
	k, err := identity.ParsePublicPEM([]byte(ak.PEM))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// edit decodes evidence, lets f change it and encodes it again.
func edit(t *testing.T, raw []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEvidenceOnSimulator(t *testing.T) {
	open := tpmsim.Open(t)
	signer := testSigner(t)
	tp := New(Options{Open: open, Secret: signer.DeriveSecret(SecretLabel), PCRs: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14}})
	ak := pinned(t, tp)
	if ak.Alg != AlgECCP256 {
		t.Errorf("AK alg %s, want %s", ak.Alg, AlgECCP256)
	}
	raw := testBundle(t, signer)
	nonce := nonceOf(1)
	ev := evidenceFor(t, tp, nonce, raw)
	v, err := Verify(ev, akKey(t, ak), nonce)
	if err != nil {
		t.Fatalf("genuine evidence refused: %v", err)
	}
	if len(v.PCRs) != 12 {
		t.Errorf("%d PCRs verified, want 12", len(v.PCRs))
	}

	other := New(Options{Open: open, Secret: testSigner(t).DeriveSecret(SecretLabel), PCRs: []int{0}})
	otherAK := pinned(t, other)
	old := evidenceFor(t, tp, nonceOf(9), raw)

	for i, tc := range []struct {
		name  string
		ev    []byte
		nonce []byte
		ak    AKPublic
		want  string
	}{
		{"wrong nonce", ev, nonceOf(2), ak, "not an answer to this request"},
		{"nonce field rewritten to the verifier's", edit(t, old, func(m map[string]any) { m["nonce"] = hex.EncodeToString(nonceOf(2)) }), nonceOf(2), ak, "quote_nonce_mismatch"},
		{"replayed old quote", old, nonce, ak, "replayed"},
		{"changed bundle field", edit(t, ev, func(m map[string]any) { m["bundle"].(map[string]any)["state"] = "degraded" }), nonce, ak, "quote_nonce_mismatch"},
		{"changed bundle and digest", edit(t, ev, func(m map[string]any) {
			m["bundle"].(map[string]any)["sequence"] = 8
		}), nonce, ak, "bundle_digest"},
		{"changed PCR", edit(t, ev, func(m map[string]any) {
			m["quote"].(map[string]any)["pcrs"].(map[string]any)["7"] = strings.Repeat("00", 31) + "01"
		}), nonce, ak, "quote_pcr_digest_mismatch"},
		{"PCR left out", edit(t, ev, func(m map[string]any) { delete(m["quote"].(map[string]any)["pcrs"].(map[string]any), "14") }), nonce, ak, "quote_selection_mismatch"},
		{"another AK pinned", ev, nonce, otherAK, "not the pinned AK"},
		{"AK in the evidence swapped", edit(t, ev, func(m map[string]any) {
			m["ak"].(map[string]any)["tpm2b_public"] = otherAK.TPM2BPublic
		}), nonce, ak, "not the pinned AK"},
	} {
		_, err := Verify(tc.ev, akKey(t, tc.ak), tc.nonce)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: %s: got %v, want an error with %q", i, tc.name, err, tc.want)
		}
	}
}

// TestAKCannotBeRederived: whoever reaches the TPM cannot make it derive the
// daemon's AK without the daemon's secret, neither from the well-known
// zero-unique template nor from the AK's published public area, and cannot
// use a loaded AK without its authValue.
func TestAKCannotBeRederived(t *testing.T) {
	open := tpmsim.Open(t)
	secret := testSigner(t).DeriveSecret(SecretLabel)
	tp := New(Options{Open: open, Secret: secret, PCRs: []int{0}})
	ak := pinned(t, tp)
	again := New(Options{Open: open, Secret: secret, PCRs: []int{0}})
	if got := pinned(t, again); got.PEM != ak.PEM {
		t.Fatalf("the same secret derived another AK:\n%s\n%s", got.PEM, ak.PEM)
	}
	conn, _ := open(context.Background())
	tpm := tpmio.Bind(context.Background(), conn, tpmio.Policy{})

	published, err := ParseTPM2BPublic(ak.TPM2BPublic)
	if err != nil {
		t.Fatal(err)
	}
	zero := akTemplate(AlgECCP256, nil)
	ecc, _ := zero.Unique.ECC()
	ecc.X.Buffer, ecc.Y.Buffer = make([]byte, 32), make([]byte, 32)
	for i, tmpl := range []tpm2.TPM2BPublic{tpm2.New2B(zero), tpm2.BytesAs2B[tpm2.TPMTPublic](published.Raw)} {
		rsp, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tmpl,
		}.Execute(tpm)
		if err != nil {
			t.Fatalf("Test %d: CreatePrimary: %v", i, err)
		}
		_, _ = tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(tpm)
		if bytes.Equal(rsp.Name.Buffer, mustName(t, published)) {
			t.Errorf("Test %d: a template without the secret re-derived the daemon's AK", i)
		}
	}

	k, err := createAK(tpm, secret)
	if err != nil {
		t.Fatal(err)
	}
	defer k.flush(tpm)
	for i, auth := range []tpm2.Session{tpm2.PasswordAuth(nil), tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth([]byte("guess")))} {
		_, err = tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: auth},
			QualifyingData: tpm2.TPM2BData{Buffer: nonceOf(3)},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      selection([]int{0}),
		}.Execute(tpm)
		if err == nil {
			t.Errorf("Test %d: the loaded AK quoted without its authValue", i)
		}
	}
}

func mustName(t *testing.T, p interface{ Name() ([]byte, error) }) []byte {
	t.Helper()
	n, err := p.Name()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestErrorsWithoutTPMOrKey(t *testing.T) {
	t.Parallel()
	absent := func(context.Context) (tpmio.Conn, error) { return nil, tpmio.ErrAbsent }
	for i, tc := range []struct {
		opts Options
		want error
	}{
		{Options{Secret: []byte("s")}, ErrNoTPM},
		{Options{Open: absent, Secret: []byte("s")}, ErrNoTPM},
		{Options{Open: absent}, ErrNoIdentity},
	} {
		if _, err := New(tc.opts).Quote(context.Background(), nonceOf(1)); !errors.Is(err, tc.want) {
			t.Errorf("Test %d: got %v, want %v", i, err, tc.want)
		}
	}
}

// holdingOpen returns an Open that reports each call on entered, then
// blocks until hold is closed and finds no TPM.
func holdingOpen() (hold chan struct{}, entered chan struct{}, open func(context.Context) (tpmio.Conn, error)) {
	hold, entered = make(chan struct{}), make(chan struct{}, 8)
	open = func(ctx context.Context) (tpmio.Conn, error) {
		entered <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
		}
		return nil, tpmio.ErrAbsent
	}
	return hold, entered, open
}

// TestFloodIsRefused: one operation runs, Queue wait, the rest get ErrBusy
// at once; when the running one ends, the TPM serves again.
func TestFloodIsRefused(t *testing.T) {
	t.Parallel()
	hold, entered, open := holdingOpen()
	tp := New(Options{Open: open, Secret: []byte("s"), Queue: 2, Wait: time.Minute})
	var wg sync.WaitGroup
	results := make(chan error, 3)
	wg.Add(1)
	go func() { defer wg.Done(); _, err := tp.Quote(context.Background(), nil); results <- err }()
	<-entered
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, err := tp.Quote(context.Background(), nil); results <- err }()
	}
	// The queue fills (2 waiting); every further request is refused at once.
	for deadline := time.Now().Add(10 * time.Second); len(tp.slots) < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests hold a slot, want 3", len(tp.slots))
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		if _, err := tp.Quote(context.Background(), nil); !errors.Is(err, ErrBusy) {
			t.Fatalf("request %d beyond the queue: got %v, want ErrBusy", i, err)
		}
	}
	close(hold)
	wg.Wait()
	close(results)
	for err := range results {
		if !errors.Is(err, ErrNoTPM) {
			t.Errorf("a queued request got %v, want its turn (ErrNoTPM from this TPM)", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tp.Quote(ctx, nil); err == nil {
		t.Error("a cancelled request was served")
	}
}

// TestSwtpmCheckquote: evidence from swtpm, verified by Verify and by
// tpm2_checkquote from tpm2-tools, with the qualifying data computed by
// hand from the nonce and the bundle.
func TestSwtpmCheckquote(t *testing.T) {
	t.Parallel()
	checkquote, err := exec.LookPath("tpm2_checkquote")
	if err != nil {
		t.Skip("tpm2_checkquote is not installed (scripts/install-deps.sh, or apt-get install tpm2-tools)")
	}
	sw := swtpmtest.Start(t)
	sw.Do(t, func(tpm transport.TPM) {
		for _, p := range []int{0, 7, 14} {
			_, err := tpm2.PCRExtend{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(p), Auth: tpm2.PasswordAuth(nil)},
				Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: bytes.Repeat([]byte{byte(p + 1)}, 32)}}}}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	signer := testSigner(t)
	pcrs := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14}
	tp := New(Options{Open: sw.Open, Secret: signer.DeriveSecret(SecretLabel), PCRs: pcrs})
	ak := pinned(t, tp)
	raw := testBundle(t, signer)
	nonce := nonceOf(5)
	evRaw := evidenceFor(t, tp, nonce, raw)
	if _, err := Verify(evRaw, akKey(t, ak), nonce); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var ev Evidence
	if err := json.Unmarshal(evRaw, &ev); err != nil {
		t.Fatal(err)
	}
	// The qualifying data by hand: SHA-256(nonce || SHA-256(JCS(bundle
	// without bundle_hmac and bundle_signature))).
	in, err := bundle.SignatureInput(ev.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(in)
	qd := sha256.Sum256(append(append([]byte(nil), nonce...), digest[:]...))

	dir := t.TempDir()
	if d := os.Getenv("EVIDENCE_DUMP"); d != "" {
		dir = d
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pcrFile := write("pcrs.bin", TPM2ToolsPCRs(mustPCRs(t, ev.Quote)))
	args := []string{"-u", write("ak.pem", []byte(ev.AK.PEM)), "-m", write("quote.msg", ev.Quote.Attest),
		"-s", write("quote.sig", ev.Quote.Signature), "-f", pcrFile, "-g", "sha256"}
	run := func(q []byte) error {
		out, err := exec.Command(checkquote, append(args, "-q", hex.EncodeToString(q))...).CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	if err := run(qd[:]); err != nil {
		t.Fatalf("tpm2_checkquote refused genuine evidence: %v", err)
	}
	wrong := sha256.Sum256(append(nonceOf(6), digest[:]...))
	if err := run(wrong[:]); err == nil {
		t.Error("tpm2_checkquote accepted the quote for another nonce")
	}
	changed := mustPCRs(t, ev.Quote)
	changed[7][0] ^= 1
	write("pcrs.bin", TPM2ToolsPCRs(changed))
	if err := run(qd[:]); err == nil {
		t.Error("tpm2_checkquote accepted a changed PCR value")
	}
}

func mustPCRs(t *testing.T, q QuoteJSON) map[int][]byte {
	t.Helper()
	m, err := parsePCRs(q)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestManyAKsOnSwtpm: every derived AK can be used on swtpm. (Raw random
// authValues with a zero byte were refused by libtpms in about one key in
// nine; see akAuth.)
func TestManyAKsOnSwtpm(t *testing.T) {
	t.Parallel()
	sw := swtpmtest.Start(t)
	for i := 0; i < 40; i++ {
		tp := New(Options{Open: sw.Open, Secret: testSigner(t).DeriveSecret(SecretLabel), PCRs: []int{0}})
		if _, err := tp.Quote(context.Background(), nonceOf(byte(i))); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
}

// TestExclusiveIsNotRefusedInAFlood: with the queue full of evidence
// requests, Exclusive (the verdict measurement) waits for its turn and is
// never refused as busy.
func TestExclusiveIsNotRefusedInAFlood(t *testing.T) {
	t.Parallel()
	hold, _, open := holdingOpen()
	tp := New(Options{Open: open, Secret: []byte("s"), Queue: 1, Wait: time.Minute})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = tp.Quote(context.Background(), nil) }()
	}
	for deadline := time.Now().Add(10 * time.Second); len(tp.slots) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the queue did not fill")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := tp.Quote(context.Background(), nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("a request beyond the queue got %v, want ErrBusy", err)
	}
	ran := make(chan error, 1)
	go func() { ran <- tp.Exclusive(context.Background(), func(transport.TPM) error { return nil }) }()
	close(hold)
	wg.Wait()
	if err := <-ran; !errors.Is(err, ErrNoTPM) {
		t.Errorf("Exclusive got %v, want its turn (ErrNoTPM from this TPM)", err)
	}
}

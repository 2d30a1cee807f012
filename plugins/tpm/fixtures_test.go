package tpm

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

var update = flag.Bool("update", false, "regenerate plugins/tpm/attest/testdata from the TPM simulator")

// quoteFixture is a real quote from the simulator, stored for the attest
// package's tests, which run without a TPM.
type quoteFixture struct {
	Comment   string            `json:"comment"`
	Attest    string            `json:"attest"`
	Signature string            `json:"signature"`
	AKPublic  string            `json:"ak_public"`
	Nonce     string            `json:"nonce"`
	PCRs      map[string]string `json:"pcrs"`
}

// TestWriteAttestFixtures records quotes from the simulator as fixtures and
// fuzz seeds for package attest: go test ./plugins/tpm -run TestWriteAttestFixtures -update
func TestWriteAttestFixtures(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate plugins/tpm/attest/testdata")
	}
	sim := openSim(t)
	tpm := direct(sim)
	extend(t, tpm, 0, digestOf("firmware"))
	extend(t, tpm, 7, digestOf("secure boot policy"))
	extend(t, tpm, 10, digestOf("ima"))
	pcrs := []int{0, 1, 2, 3, 4, 5, 6, 7, 10}
	dir := filepath.Join("attest", "testdata")
	var seeds = map[string][][]byte{}
	for _, alg := range []string{akECC, akRSA} {
		ak, err := createAK(tpm, alg)
		if err != nil {
			t.Fatal(err)
		}
		nonce := digestOf("fixture nonce " + alg)
		q, err := quote(tpm, ak, pcrs, nonce)
		if err != nil {
			t.Fatal(err)
		}
		values, err := ReadPCRs(tpm, pcrs)
		if err != nil {
			t.Fatal(err)
		}
		if rep := attest.Verify(q.attest, q.signature, ak.public, attest.Expected{Nonce: nonce, PCRs: values}); !rep.Verified() {
			t.Fatalf("%s: fresh quote does not verify: %+v", alg, rep.Problems)
		}
		f := quoteFixture{
			Comment:   fmt.Sprintf("TPM2_Quote of SHA-256 PCRs %v by an %s AK from the go-tpm-tools simulator (TestWriteAttestFixtures)", pcrs, strings.ToUpper(alg)),
			Attest:    hex.EncodeToString(q.attest),
			Signature: hex.EncodeToString(q.signature),
			AKPublic:  hex.EncodeToString(ak.public.Raw),
			Nonce:     hex.EncodeToString(nonce),
			PCRs:      map[string]string{},
		}
		for p, v := range values {
			f.PCRs[strconv.Itoa(p)] = hex.EncodeToString(v)
		}
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "quote-"+alg+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		seeds["FuzzParseAttest/quote-"+alg] = [][]byte{q.attest}
		seeds["FuzzParseSignature/"+alg] = [][]byte{q.signature}
		seeds["FuzzParsePublic/ak-"+alg] = [][]byte{ak.public.Raw}
		seeds["FuzzVerify/quote-"+alg] = [][]byte{q.attest, q.signature}
	}
	for name, args := range seeds {
		path := filepath.Join(dir, "fuzz", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n"
		for _, a := range args {
			body += "[]byte(" + strconv.Quote(string(a)) + ")\n"
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

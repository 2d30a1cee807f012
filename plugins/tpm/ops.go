package tpm

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// pcrValues maps a PCR index to its SHA-256 value.
type pcrValues map[int][]byte

func (v pcrValues) equal(o pcrValues) bool {
	if len(v) != len(o) {
		return false
	}
	for k, a := range v {
		if b, ok := o[k]; !ok || !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}

// bankValues holds the values read of each bank quoted.
type bankValues map[tpm2.TPMAlgID]pcrValues

func (b bankValues) equal(o bankValues) bool {
	if len(b) != len(o) {
		return false
	}
	for h, v := range b {
		if !v.equal(o[h]) {
			return false
		}
	}
	return true
}

// others returns the banks other than SHA-256, keyed as package attest
// keys them.
func (b bankValues) others() map[uint16]map[int][]byte {
	out := map[uint16]map[int][]byte{}
	for h, v := range b {
		if h != tpm2.TPMAlgSHA256 {
			out[uint16(h)] = v
		}
	}
	return out
}

// pcrSelection builds a TPML_PCR_SELECTION of pcrs in the SHA-256 bank
// and each bank of extra.
func pcrSelection(pcrs []int, extra ...tpm2.TPMAlgID) tpm2.TPMLPCRSelection {
	var out tpm2.TPMLPCRSelection
	for _, h := range append([]tpm2.TPMAlgID{tpm2.TPMAlgSHA256}, extra...) {
		sel := attest.NewPCRSelection(uint16(h), pcrs)
		out.PCRSelections = append(out.PCRSelections, tpm2.TPMSPCRSelection{Hash: h, PCRSelect: sel.Bitmap})
	}
	return out
}

// ReadPCRs reads pcrs from the SHA-256 bank.
func ReadPCRs(t transport.TPM, pcrs []int) (map[int][]byte, error) {
	return readBank(t, tpm2.TPMAlgSHA256, pcrs)
}

// readBank reads pcrs from bank h. A TPM returns at most a few values per
// TPM2_PCR_Read (8 on most), so it asks again for the rest until it has
// them all.
func readBank(t transport.TPM, h tpm2.TPMAlgID, pcrs []int) (map[int][]byte, error) {
	name := bankLabel(h)
	size := bankSize(h)
	out := pcrValues{}
	remaining := append([]int(nil), pcrs...)
	for len(remaining) > 0 {
		sel := attest.NewPCRSelection(uint16(h), remaining)
		in := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: h, PCRSelect: sel.Bitmap}}}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: in}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("TPM2_PCR_Read of %s PCRs %v: %w", name, remaining, err)
		}
		var got []int
		for _, s := range rsp.PCRSelectionOut.PCRSelections {
			idx := attest.PCRSelection{Hash: uint16(s.Hash), Bitmap: s.PCRSelect}.PCRs()
			if s.Hash != h && len(idx) > 0 {
				return nil, fmt.Errorf("TPM2_PCR_Read returned bank 0x%04x, asked for %s", uint16(s.Hash), name)
			}
			got = append(got, idx...)
		}
		if len(got) == 0 {
			return nil, fmt.Errorf("TPM2_PCR_Read returned no values for %s PCRs %v: is the %s bank allocated?", name, remaining, name)
		}
		if len(got) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("TPM2_PCR_Read returned %d PCR indices and %d values", len(got), len(rsp.PCRValues.Digests))
		}
		want := map[int]bool{}
		for _, p := range remaining {
			want[p] = true
		}
		for i, p := range got {
			if !want[p] {
				return nil, fmt.Errorf("TPM2_PCR_Read returned PCR %d, which was not asked for", p)
			}
			d := rsp.PCRValues.Digests[i].Buffer
			if len(d) != size {
				return nil, fmt.Errorf("TPM2_PCR_Read returned a %d-byte value for %s PCR %d", len(d), name, p)
			}
			out[p] = append([]byte(nil), d...)
			delete(want, p)
		}
		remaining = remaining[:0]
		for p := range want {
			remaining = append(remaining, p)
		}
		sort.Ints(remaining)
	}
	return out, nil
}

// bankLabel names a bank in messages: "SHA-256".
func bankLabel(h tpm2.TPMAlgID) string {
	switch h {
	case tpm2.TPMAlgSHA1:
		return "SHA-1"
	case tpm2.TPMAlgSHA384:
		return "SHA-384"
	}
	return "SHA-256"
}

func bankSize(h tpm2.TPMAlgID) int {
	switch h {
	case tpm2.TPMAlgSHA1:
		return 20
	case tpm2.TPMAlgSHA384:
		return 48
	}
	return 32
}

// akTemplate is the public template of an attestation key created under
// the endorsement hierarchy: a restricted signing key that never leaves the
// TPM, ECDSA P-256 or RSASSA-2048, both with SHA-256.
func akTemplate(alg string) tpm2.TPMTPublic {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		Restricted:          true,
		SignEncrypt:         true,
	}
	if alg == akRSA {
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgRSA,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme: tpm2.TPMTRSAScheme{
					Scheme:  tpm2.TPMAlgRSASSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256}),
				},
				KeyBits: 2048,
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: make([]byte, 256)}),
		}
	}
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: attrs,
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		}),
	}
}

// akKey is a loaded attestation key.
type akKey struct {
	handle    tpm2.TPMHandle
	name      []byte // TPM name (nameAlg || digest)
	public    *attest.Public
	transient bool // created by the plugin, flushed by a TPM reset
}

// errUnsuitable marks an AK that loaded but cannot attest.
var errUnsuitable = errors.New("unsuitable attestation key")

// CreateAK creates a primary attestation key under the endorsement
// hierarchy (empty endorsement authorization) and returns it loaded.
func createAK(t transport.TPM, alg string) (*akKey, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(akTemplate(alg)),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("TPM2_CreatePrimary of an %s AK under the endorsement hierarchy: %w", alg, err)
	}
	k, err := newAK(rsp.ObjectHandle, rsp.OutPublic.Bytes(), rsp.Name.Buffer)
	if err != nil {
		_, _ = tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(t)
		return nil, err
	}
	k.transient = true
	return k, nil
}

// loadAK reads a persistent attestation key's public area.
func loadAK(t transport.TPM, handle uint32) (*akKey, error) {
	rsp, err := tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(handle)}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("TPM2_ReadPublic of persistent AK 0x%08x: %w", handle, err)
	}
	return newAK(tpm2.TPMHandle(handle), rsp.OutPublic.Bytes(), rsp.Name.Buffer)
}

// newAK checks a key's public area and that the name the TPM gave is the
// name of that public area.
func newAK(h tpm2.TPMHandle, pub, name []byte) (*akKey, error) {
	p, err := attest.ParsePublic(pub)
	if err != nil {
		return nil, fmt.Errorf("%w 0x%08x: %w", errUnsuitable, uint32(h), err)
	}
	if err := attest.CheckAK(p); err != nil {
		return nil, fmt.Errorf("%w 0x%08x: %w", errUnsuitable, uint32(h), err)
	}
	computed, err := p.Name()
	if err != nil {
		return nil, fmt.Errorf("%w 0x%08x: %w", errUnsuitable, uint32(h), err)
	}
	if !bytes.Equal(computed, name) {
		return nil, fmt.Errorf("AK 0x%08x: the TPM names it %x, its public area gives %x", uint32(h), name, computed)
	}
	return &akKey{handle: h, name: computed, public: p}, nil
}

// quoteResult is a quote as the TPM returned it.
type quoteResult struct {
	attest    []byte // TPMS_ATTEST
	signature []byte // TPMT_SIGNATURE
}

// quote asks the TPM for a quote of pcrs in the SHA-256 bank and each bank
// of extra, signed by ak, with qualifying data nonce.
func quote(t transport.TPM, ak *akKey, pcrs []int, nonce []byte, extra ...tpm2.TPMAlgID) (*quoteResult, error) {
	rsp, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak.handle, Name: tpm2.TPM2BName{Buffer: ak.name}, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      pcrSelection(pcrs, extra...),
	}.Execute(t)
	if err != nil {
		banks := "SHA-256"
		for _, h := range extra {
			banks += " and " + bankLabel(h)
		}
		return nil, fmt.Errorf("TPM2_Quote of %s PCRs %v with AK 0x%08x: %w", banks, pcrs, uint32(ak.handle), err)
	}
	return &quoteResult{attest: rsp.Quoted.Bytes(), signature: tpm2.Marshal(rsp.Signature)}, nil
}

// flushTransients flushes every transient object in a TPM without a
// resource manager: objects a previous run of the plugin left behind when
// it was killed would otherwise fill the TPM's few object slots.
func flushTransients(t transport.TPM) (int, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTTransient) << 24, PropertyCount: 64}.Execute(t)
	if err != nil {
		return 0, fmt.Errorf("TPM2_GetCapability of transient handles: %w", err)
	}
	hs, err := rsp.CapabilityData.Data.Handles()
	if err != nil {
		return 0, fmt.Errorf("TPM2_GetCapability of transient handles: %w", err)
	}
	n := 0
	for _, h := range hs.Handle {
		if uint32(h)>>24 != uint32(tpm2.TPMHTTransient) {
			continue
		}
		if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t); err != nil {
			return n, fmt.Errorf("TPM2_FlushContext of 0x%08x: %w", uint32(h), err)
		}
		n++
	}
	return n, nil
}

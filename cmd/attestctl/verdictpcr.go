package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/secure-ai/runtime-attestor/core/verdict"
	"github.com/secure-ai/runtime-attestor/policy"
)

// verdictPCR prints the verdict of a known-good bundle and the verdict
// PCR's value when it is the only verdict since boot: the value a fleet
// verifier pins (docs/deployment.md).
func (a *app) verdictPCR(args []string) int {
	fs := a.flagSet("verdict-pcr", "[--pcr N] [BUNDLE|-]",
		"Prints the verdict of a bundle (a known-good appliance's GET /api/v1/attest\n"+
			"answer, or its bundle), the digest the attestor extends for it, and the value\n"+
			"of the verdict PCR when that verdict is the only one since boot: what a\n"+
			"Keylime tpm_policy or any PCR-pinning verifier pins for \"attested since\n"+
			"boot\" on that build (docs/deployment.md). It checks no signature: run\n"+
			"verify-bundle first.")
	pcr := fs.Int("pcr", policy.DefaultVerdictPCR, "the verdict PCR (verdict_pcr)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return a.usageError(fs, "verdict-pcr takes at most one file")
	}
	src := "-"
	if len(pos) == 1 {
		src = pos[0]
	}
	raw, err := a.readInput(src, maxBundle)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	var wrapped struct {
		Bundle json.RawMessage `json:"bundle"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && len(wrapped.Bundle) > 0 && string(wrapped.Bundle) != "null" {
		raw = wrapped.Bundle
	}
	v, _, err := verdict.Of(raw)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	d, err := v.Digest()
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	out, _ := json.Marshal(v)
	value := verdict.Extend(make([]byte, len(d)), d)
	fmt.Fprintf(a.stdout, "verdict:        %s\ndigest:         %s\npcr %d after it: %s\nkeylime:        {\"%d\": [\"%s\"]}\n",
		out, hex.EncodeToString(d), *pcr, hex.EncodeToString(value), *pcr, hex.EncodeToString(value))
	return exitOK
}

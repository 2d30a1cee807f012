package tpm

import (
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// Finding codes. They are part of the plugin's contract: operators key
// severity overrides and alerts on them.
const (
	CodeUnavailable            = "tpm.unavailable"
	CodeOpenFailed             = "tpm.open_failed"
	CodeBusy                   = "tpm.busy"
	CodePCRReadFailed          = "tpm.pcr_read_failed"
	CodePCRMismatch            = "tpm.pcr_mismatch"
	CodeAKFailed               = "tpm.ak_failed"
	CodeAKUnsuitable           = "tpm.ak_unsuitable"
	CodeQuoteFailed            = "tpm.quote_failed"
	CodeQuoteMalformed         = "tpm." + string(attest.Malformed)
	CodeQuoteSignatureInvalid  = "tpm." + string(attest.SignatureInvalid)
	CodeQuoteBadMagic          = "tpm." + string(attest.BadMagic)
	CodeQuoteBadType           = "tpm." + string(attest.BadType)
	CodeQuoteNonceMismatch     = "tpm." + string(attest.NonceMismatch)
	CodeQuoteSelectionMismatch = "tpm." + string(attest.SelectionMismatch)
	CodeQuotePCRDigestMismatch = "tpm." + string(attest.PCRDigestMismatch)
	CodeClockRollback          = "tpm.clock_rollback"
	CodeClockStateInvalid      = "tpm.clock_state_invalid"
	CodeClockStateUnavailable  = "tpm.clock_state_unavailable"
	CodeClockStateWriteFailed  = "tpm.clock_state_write_failed"
	CodeEventLogMissing        = "tpm.eventlog_missing"
	CodeEventLogInvalid        = "tpm.eventlog_invalid"
	CodeEventLogReplayFailed   = "tpm.eventlog_replay_failed"
	CodeEventLogSecureBoot     = "tpm.eventlog_secureboot_unknown"
	CodeUserspaceLogInvalid    = "tpm.userspace_log_invalid"
	CodeBootReferenceInvalid   = "tpm.boot_reference_invalid"
	CodeBootReferenceUnchecked = "tpm.boot_reference_unchecked"
	CodeBootEventMismatch      = "tpm.boot_event_mismatch"
	CodeBootEventMismatchMore  = "tpm.boot_event_mismatch_more"
)

// findingSpecs documents every code with its default severity. The
// severities follow the default weights (info 0, low 1, medium 5, high 20,
// critical 100; degraded at 5, failed at 100 or any critical): a quote that
// does not verify is evidence of tampering and fails the appliance; a TPM
// that cannot be used degrades it, and fails it when the policy requires a
// TPM.
var findingSpecs = []sdk.FindingSpec{
	{Code: CodeUnavailable, DefaultSeverity: sdk.SeverityInfo,
		Description: "no TPM at the configured device or swtpm socket; critical instead of info when the policy sets require_tpm"},
	{Code: CodeOpenFailed, DefaultSeverity: sdk.SeverityHigh,
		Description: "the TPM is there but could not be opened or did not answer (permissions, not a TPM device, broken connection); critical when the policy sets require_tpm"},
	{Code: CodeBusy, DefaultSeverity: sdk.SeverityHigh,
		Description: "the TPM stayed busy (device held by another process, TPM_RC_RETRY/YIELDED/TESTING) through every retry, or did not answer before the measurement's deadline"},
	{Code: CodePCRReadFailed, DefaultSeverity: sdk.SeverityHigh,
		Description: "TPM2_PCR_Read failed or returned no SHA-256 values (bank not allocated)"},
	{Code: CodePCRMismatch, DefaultSeverity: sdk.SeverityHigh,
		Description: "a PCR differs from its expected_pcrs value; subject pcr:N, the message names expected and actual"},
	{Code: CodeAKFailed, DefaultSeverity: sdk.SeverityHigh,
		Description: "the attestation key could not be created under the endorsement hierarchy or read from its persistent handle"},
	{Code: CodeAKUnsuitable, DefaultSeverity: sdk.SeverityHigh,
		Description: "the attestation key is not a restricted signing key that stays in the TPM (RSASSA/RSAPSS/ECDSA, fixedTPM, fixedParent, sensitiveDataOrigin), so its quotes prove nothing"},
	{Code: CodeQuoteFailed, DefaultSeverity: sdk.SeverityHigh,
		Description: "the TPM refused TPM2_Quote"},
	{Code: CodeQuoteMalformed, DefaultSeverity: sdk.SeverityCritical,
		Description: "the quote's TPMS_ATTEST or TPMT_SIGNATURE bytes do not parse"},
	{Code: CodeQuoteSignatureInvalid, DefaultSeverity: sdk.SeverityCritical,
		Description: "the quote's signature does not verify against the attestation key's public key"},
	{Code: CodeQuoteBadMagic, DefaultSeverity: sdk.SeverityCritical,
		Description: "the quote does not start with TPM_GENERATED_VALUE: the TPM did not generate it"},
	{Code: CodeQuoteBadType, DefaultSeverity: sdk.SeverityCritical,
		Description: "the signed structure is not a TPM_ST_ATTEST_QUOTE"},
	{Code: CodeQuoteNonceMismatch, DefaultSeverity: sdk.SeverityCritical,
		Description: "the quote's extraData is not this measurement's nonce: a replayed or substituted quote"},
	{Code: CodeQuoteSelectionMismatch, DefaultSeverity: sdk.SeverityCritical,
		Description: "the quote covers other PCRs than those requested"},
	{Code: CodeQuotePCRDigestMismatch, DefaultSeverity: sdk.SeverityCritical,
		Description: "the quote's PCR digest is not the digest of the PCR values read: the values read are not the TPM's"},
	{Code: CodeClockRollback, DefaultSeverity: sdk.SeverityCritical,
		Description: "the TPM's reset or restart count went down, or its clock went backwards within one reset, between two verified quotes (TPM state rolled back or replaced)"},
	{Code: CodeClockStateInvalid, DefaultSeverity: sdk.SeverityMedium,
		Description: "the TPM clock state file (state_file) is corrupt or unreadable; the message names the file and what is wrong. Clock tracking restarts from the current quote and the file is rewritten"},
	{Code: CodeClockStateUnavailable, DefaultSeverity: sdk.SeverityInfo,
		Description: "the folder of the TPM clock state file (state_file) does not exist; the subject names it. The clock is tracked in the plugin process only, so with on-demand plugins a rollback between attestations goes unnoticed"},
	{Code: CodeClockStateWriteFailed, DefaultSeverity: sdk.SeverityMedium,
		Description: "the TPM clock state file (state_file) could not be written (folder not writable, disk full, read-only file system); the clock is tracked in the plugin process only until it can"},
	{Code: CodeEventLogMissing, DefaultSeverity: sdk.SeverityInfo,
		Description: "no firmware event log at event_log (a machine without UEFI and TPM, or securityfs not mounted): the boot cannot be replayed; high instead of info when the policy sets boot_reference"},
	{Code: CodeEventLogInvalid, DefaultSeverity: sdk.SeverityHigh,
		Description: "the firmware event log cannot be read or does not parse (truncated, garbage, past 4 MiB or 8192 events)"},
	{Code: CodeEventLogReplayFailed, DefaultSeverity: sdk.SeverityHigh,
		Description: "a PCR's logged events do not extend to the value the quote vouched for (or the log lacks the quoted bank): the log does not describe this boot; subject pcr:N/bank"},
	{Code: CodeEventLogSecureBoot, DefaultSeverity: sdk.SeverityLow,
		Description: "the log replayed but PCR 7's events do not give a coherent Secure Boot state (go-attestation's checks); boot_measurements.secure_boot comes from efivars alone"},
	{Code: CodeUserspaceLogInvalid, DefaultSeverity: sdk.SeverityHigh,
		Description: "systemd's userspace measurement log (userspace_log, CEL-JSON) cannot be read or does not parse; the message names the record"},
	{Code: CodeBootReferenceInvalid, DefaultSeverity: sdk.SeverityHigh,
		Description: "the boot_reference file cannot be read or is not a valid boot reference; the message names the entry that is wrong"},
	{Code: CodeBootReferenceUnchecked, DefaultSeverity: sdk.SeverityHigh,
		Description: "PCRs the boot reference lists could not be compared: no verified quote, no log, or the PCR did not replay"},
	{Code: CodeBootEventMismatch, DefaultSeverity: sdk.SeverityHigh,
		Description: "an event of a replayed PCR differs from the boot reference: the message names the PCR, event index, type, measured digest and description, and what the reference allows there; subject pcr:N/event:I (pcr:N/userspace:I, pcr:N for a missing event); at most 20 per attestation"},
	{Code: CodeBootEventMismatchMore, DefaultSeverity: sdk.SeverityInfo,
		Description: "more than 20 events differ from the boot reference: counts the rest per PCR"},
}

// severityOf returns a code's default severity.
func severityOf(code string) sdk.Severity {
	for _, f := range findingSpecs {
		if f.Code == code {
			return f.DefaultSeverity
		}
	}
	panic("tpm: undocumented finding code " + code)
}

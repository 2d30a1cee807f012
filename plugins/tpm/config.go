package tpm

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

// DefaultDevice is the kernel's TPM 2.0 resource manager, shared between
// processes.
const DefaultDevice = "/dev/tpmrm0"

// DefaultStateFile keeps the TPM clock high-water marks between plugin
// processes: the unit's StateDirectory=secure-ai/runtime-attestor.
const DefaultStateFile = "/var/lib/secure-ai/runtime-attestor/tpm-clock.json"

// Where the logs are by default.
const (
	DefaultEventLog     = eventlog.DefaultFirmwareLog
	DefaultUserspaceLog = eventlog.DefaultUserspaceLog
)

// Defaults of the other settings.
const (
	defaultRetries    = 5
	defaultRetryDelay = 100 * time.Millisecond
	maxRetries        = 100
	maxRetryDelay     = 10 * time.Second
	numPCRs           = 24
)

// defaultPCRs are the PCRs firmware and boot loader measure into on a PC
// (TCG PC Client Platform Firmware Profile): 0-7.
var defaultPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

// rawConfig is the JSON the daemon sends: the injected policy keys
// (require_tpm, expected_pcrs) and plugins.tpm.config.
type rawConfig struct {
	RequireTPM   bool              `json:"require_tpm"`
	ExpectedPCRs map[string]string `json:"expected_pcrs"`
	Device       string            `json:"device"`
	SwtpmSocket  string            `json:"swtpm_socket"`
	PCRs         *[]int            `json:"pcrs"`
	AK           rawAK             `json:"ak"`
	Retries      *int              `json:"retries"`
	RetryDelay   string            `json:"retry_delay"`
	// StateFile is a pointer so that "" (persistence off) differs from
	// absent (the default file).
	StateFile *string `json:"state_file"`
	// BootReference is the injected top-level boot_reference; EventLog
	// and UserspaceLog are pointers so that "" (off) differs from absent.
	BootReference string   `json:"boot_reference"`
	EventLog      *string  `json:"event_log"`
	UserspaceLog  *string  `json:"userspace_log"`
	Banks         []string `json:"banks"`
}

type rawAK struct {
	Handle    string `json:"handle"`
	Algorithm string `json:"algorithm"`
}

// AK algorithms.
const (
	akECC = "ecc"
	akRSA = "rsa"
)

// settings is a validated configuration.
type settings struct {
	requireTPM bool
	// expected maps a PCR index to its pinned SHA-256 value.
	expected map[int][]byte
	// device or socket: exactly one is set.
	device string
	socket string
	// pcrs is the selection, sorted: pcrs (or 0-7) plus every pinned PCR.
	pcrs []int
	// akHandle is a persistent AK's handle; 0 creates one under the
	// endorsement hierarchy.
	akHandle uint32
	akAlg    string
	retry    tpmio.Policy
	// stateFile keeps the clock high-water marks between processes; ""
	// keeps them in the process only.
	stateFile string
	// bootReference is the boot reference file; "" compares nothing.
	bootReference string
	// eventLog and userspaceLog are the logs replayed; "" reads none.
	eventLog     string
	userspaceLog string
	// banks are the banks read and quoted besides SHA-256 (always
	// quoted), in config order.
	banks []tpm2.TPMAlgID
}

// target names where the TPM is, for messages and subjects.
func (s settings) target() string {
	if s.socket != "" {
		return s.socket
	}
	return s.device
}

// parseConfig decodes and validates the plugin's configuration. Its errors
// are *sdk.ConfigError naming the key.
func parseConfig(cfg sdk.Config) (settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return settings{}, err
	}
	s := settings{requireTPM: raw.RequireTPM, akAlg: akECC, retry: tpmio.Policy{Retries: defaultRetries, Delay: defaultRetryDelay},
		stateFile: DefaultStateFile}

	var err error
	if s.expected, err = parseExpected(raw.ExpectedPCRs); err != nil {
		return settings{}, err
	}

	switch {
	case raw.Device != "" && raw.SwtpmSocket != "":
		return settings{}, sdk.ConfigErrorf("swtpm_socket", "is mutually exclusive with device: set one")
	case raw.SwtpmSocket != "":
		if err := checkPath(raw.SwtpmSocket); err != nil {
			return settings{}, sdk.ConfigErrorf("swtpm_socket", "%v", err)
		}
		s.socket = raw.SwtpmSocket
	default:
		s.device = DefaultDevice
		if raw.Device != "" {
			if err := checkPath(raw.Device); err != nil {
				return settings{}, sdk.ConfigErrorf("device", "%v", err)
			}
			s.device = raw.Device
		}
	}

	sel := map[int]bool{}
	if raw.PCRs == nil {
		for _, p := range defaultPCRs {
			sel[p] = true
		}
	} else {
		if len(*raw.PCRs) == 0 {
			return settings{}, sdk.ConfigErrorf("pcrs", "selects no PCR: list at least one index in 0..23, or leave pcrs out for 0..7")
		}
		for i, p := range *raw.PCRs {
			if p < 0 || p >= numPCRs {
				return settings{}, sdk.ConfigErrorf(fmt.Sprintf("pcrs.%d", i), "PCR %d is out of range 0..23", p)
			}
			if sel[p] {
				return settings{}, sdk.ConfigErrorf(fmt.Sprintf("pcrs.%d", i), "PCR %d is listed twice", p)
			}
			sel[p] = true
		}
	}
	for p := range s.expected {
		sel[p] = true
	}
	for p := range sel {
		s.pcrs = append(s.pcrs, p)
	}
	sort.Ints(s.pcrs)

	if s.akHandle, err = parseHandle(raw.AK.Handle); err != nil {
		return settings{}, sdk.ConfigErrorf("ak.handle", "%v", err)
	}
	switch raw.AK.Algorithm {
	case "", akECC:
		s.akAlg = akECC
	case akRSA:
		s.akAlg = akRSA
	default:
		return settings{}, sdk.ConfigErrorf("ak.algorithm", "%q is not \"ecc\" or \"rsa\"", raw.AK.Algorithm)
	}
	if s.akHandle != 0 && raw.AK.Algorithm != "" {
		return settings{}, sdk.ConfigErrorf("ak.algorithm", "applies only to an AK the plugin creates; a persistent AK (ak.handle) has its own")
	}

	if raw.Retries != nil {
		if *raw.Retries < 0 || *raw.Retries > maxRetries {
			return settings{}, sdk.ConfigErrorf("retries", "%d is out of range 0..%d", *raw.Retries, maxRetries)
		}
		s.retry.Retries = *raw.Retries
	}
	if raw.RetryDelay != "" {
		d, err := time.ParseDuration(raw.RetryDelay)
		if err != nil {
			return settings{}, sdk.ConfigErrorf("retry_delay", "%q is not a duration like \"100ms\"", raw.RetryDelay)
		}
		if d < 0 || d > maxRetryDelay {
			return settings{}, sdk.ConfigErrorf("retry_delay", "%s is out of range 0..%s", d, maxRetryDelay)
		}
		s.retry.Delay = d
	}
	if raw.StateFile != nil {
		if err := checkStateFile(*raw.StateFile); err != nil {
			return settings{}, sdk.ConfigErrorf("state_file", "%v", err)
		}
		s.stateFile = *raw.StateFile
	}
	if err := parseLogs(raw, &s); err != nil {
		return settings{}, err
	}
	if s.banks, err = parseBanks(raw.Banks); err != nil {
		return settings{}, err
	}
	return s, nil
}

// parseBanks validates banks: the PCR banks to quote, SHA-256 among them.
func parseBanks(raw []string) ([]tpm2.TPMAlgID, error) {
	if raw == nil {
		return nil, nil
	}
	var out []tpm2.TPMAlgID
	seen := map[string]bool{}
	for i, b := range raw {
		key := fmt.Sprintf("banks.%d", i)
		h, ok := bankAlgs[b]
		switch {
		case !ok:
			return nil, sdk.ConfigErrorf(key, "%q is not a bank the plugin quotes (sha1, sha256 or sha384)", b)
		case seen[b]:
			return nil, sdk.ConfigErrorf(key, "%q is listed twice", b)
		}
		seen[b] = true
		if h != tpm2.TPMAlgSHA256 {
			out = append(out, h)
		}
	}
	if !seen["sha256"] {
		return nil, sdk.ConfigErrorf("banks", "must list sha256: the SHA-256 bank is always quoted (boot_measurements.pcrs, expected_pcrs)")
	}
	return out, nil
}

// bankAlgs are the banks the plugin can quote, by name.
var bankAlgs = map[string]tpm2.TPMAlgID{"sha1": tpm2.TPMAlgSHA1, "sha256": tpm2.TPMAlgSHA256, "sha384": tpm2.TPMAlgSHA384}

// bankName is the name of a bank.
func bankName(h tpm2.TPMAlgID) eventlog.Bank {
	for n, x := range bankAlgs {
		if x == h {
			return eventlog.Bank(n)
		}
	}
	return ""
}

// parseLogs validates the event log settings: absolute clean paths, or ""
// to turn a log (or the reference) off.
func parseLogs(raw rawConfig, s *settings) error {
	s.eventLog, s.userspaceLog = DefaultEventLog, DefaultUserspaceLog
	for _, f := range []struct {
		key string
		val *string
		dst *string
	}{
		{"boot_reference", &raw.BootReference, &s.bootReference},
		{"event_log", raw.EventLog, &s.eventLog},
		{"userspace_log", raw.UserspaceLog, &s.userspaceLog},
	} {
		if f.val == nil {
			continue
		}
		if *f.val != "" {
			if err := checkPath(*f.val); err != nil {
				return sdk.ConfigErrorf(f.key, "%v", err)
			}
		}
		*f.dst = *f.val
	}
	if s.bootReference != "" && s.eventLog == "" {
		return sdk.ConfigErrorf("event_log", "is off, but boot_reference needs the firmware event log to compare")
	}
	return nil
}

// checkStateFile accepts "" (no state file) or an absolute, clean path
// naming a file, not a folder.
func checkStateFile(p string) error {
	if p == "" {
		return nil
	}
	if err := checkPath(p); err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("%q names the root folder, not a file", p)
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("%q contains a NUL byte", p)
	}
	return nil
}

// parseExpected validates expected_pcrs: decimal PCR indices 0..23 mapped
// to 64 hex digits.
func parseExpected(raw map[string]string) (map[int][]byte, error) {
	out := make(map[int][]byte, len(raw))
	for k, v := range raw {
		key := "expected_pcrs." + k
		p, err := strconv.Atoi(k)
		if err != nil || strconv.Itoa(p) != k {
			return nil, sdk.ConfigErrorf(key, "%q is not a decimal PCR index", k)
		}
		if p < 0 || p >= numPCRs {
			return nil, sdk.ConfigErrorf(key, "PCR %d is out of range 0..23", p)
		}
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != 32 {
			return nil, sdk.ConfigErrorf(key, "%q is not a SHA-256 value (64 hex digits)", v)
		}
		out[p] = b
	}
	return out, nil
}

// checkPath accepts an absolute, clean path.
func checkPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("%q is not a clean path (want %q)", p, filepath.Clean(p))
	}
	return nil
}

// parseHandle accepts "" (no persistent AK) or a persistent handle
// 0x81000000..0x81FFFFFF written in hex.
func parseHandle(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		return 0, fmt.Errorf("%q is not a hex handle like \"0x81010002\"", s)
	}
	v, err := strconv.ParseUint(s[2:], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a hex handle like \"0x81010002\"", s)
	}
	if v>>24 != 0x81 {
		return 0, fmt.Errorf("%s is not a persistent object handle (0x81000000..0x81ffffff)", s)
	}
	return uint32(v), nil
}

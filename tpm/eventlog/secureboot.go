package eventlog

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/google/go-attestation/attest"
)

// MaxAuthorities bounds SecureBoot.Authorities: a real boot has a handful
// (firmware's db key for shim, shim's for GRUB and the kernel); a hostile
// log must not make the measurement too large to send.
const MaxAuthorities = 64

// SecureBoot is the Secure Boot state as the firmware measured it into
// PCR 7: what efivars say now can be faked after boot; what was measured
// cannot without breaking the replay.
type SecureBoot struct {
	// Enabled is the SecureBoot variable as measured.
	Enabled bool `json:"enabled"`
	// PK, KEK, DB and DBX are the SHA-256 of each variable's data as
	// measured (the EFI_SIGNATURE_LISTs), "" when it was not measured.
	PK  string `json:"pk"`
	KEK string `json:"kek"`
	DB  string `json:"db"`
	DBX string `json:"dbx"`
	// Authorities lists each EV_EFI_VARIABLE_AUTHORITY event: the key that
	// verified a boot application, with the application it verified.
	Authorities []Authority `json:"authorities"`
}

// Authority is one key the firmware or shim used to verify a boot
// application.
type Authority struct {
	// Event is the index of the EV_EFI_VARIABLE_AUTHORITY event.
	Event int `json:"event"`
	// Database names where the key came from: db, MokList, Shim, ...
	Database string `json:"database"`
	// Subject is the certificate's subject, "" when the authority is not a
	// certificate that parses.
	Subject string `json:"subject"`
	// SHA256 is the SHA-256 of the signature data (the certificate).
	SHA256 string `json:"sha256"`
	// Application is the path of the next boot application loaded, the
	// one this key verified; ApplicationEvent its event index (-1: none).
	Application      string `json:"application"`
	ApplicationEvent int    `json:"application_event"`
}

// SecureBootState reads the Secure Boot state from the firmware log's PCR 7
// (and PCR 2, 4) events, judged by go-attestation in bank b: the log must
// already have replayed against quoted values of that bank for the state
// to mean anything. It fails when the events do not describe a coherent
// state (variables after the separator, digests that do not match their
// data, Secure Boot on with no key used, a UEFI debugger present).
func SecureBootState(fw *Log, b Bank) (*SecureBoot, error) {
	var evs []attest.Event
	for _, e := range fw.Events {
		if e.Type == evNoAction {
			continue
		}
		evs = append(evs, attest.Event{Index: e.PCR, Type: attest.EventType(e.Type), Data: e.Data, Digest: e.Digest(b)})
	}
	st, err := attest.ParseSecurebootState(evs)
	if err != nil {
		return nil, fmt.Errorf("the Secure Boot state cannot be read from PCR 7: %w", err)
	}
	sb := &SecureBoot{Enabled: st.Enabled, Authorities: []Authority{}}
	for i, e := range fw.Events {
		if e.PCR != 7 {
			continue
		}
		v, ok := parseVariable(e.Data)
		if !ok {
			continue
		}
		switch {
		case e.Type == evEFIVariableDrv:
			sum := sha256.Sum256(v.data)
			switch v.name {
			case "PK":
				sb.PK = hex.EncodeToString(sum[:])
			case "KEK":
				sb.KEK = hex.EncodeToString(sum[:])
			case "db":
				sb.DB = hex.EncodeToString(sum[:])
			case "dbx":
				sb.DBX = hex.EncodeToString(sum[:])
			}
		case e.Type == evEFIVariableAuth && len(sb.Authorities) < MaxAuthorities:
			sb.Authorities = append(sb.Authorities, authority(fw.Events, i, v))
		}
	}
	return sb, nil
}

// authority describes the authority event at fw[i] with its variable v.
func authority(events []Event, i int, v variable) Authority {
	a := Authority{Event: events[i].Index, Database: v.name, ApplicationEvent: -1}
	sig := v.data
	sum := sha256.Sum256(sig)
	a.SHA256 = hex.EncodeToString(sum[:])
	// EFI_SIGNATURE_DATA: the owner's GUID, then the DER certificate.
	if len(sig) > 16 {
		if c, err := x509.ParseCertificate(sig[16:]); err == nil {
			a.Subject = clip(c.Subject.String())
		}
	}
	for _, e := range events[i+1:] {
		if e.Type == evEFIBootApp || e.Type == evEFIBootDriver {
			a.Application, a.ApplicationEvent = e.Description(), e.Index
			break
		}
	}
	return a
}

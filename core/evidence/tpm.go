package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// Errors a caller tells apart with errors.Is.
var (
	// ErrNoTPM: no TPM is configured, or none answers at the configured
	// path. The API answers 409.
	ErrNoTPM = errors.New("no TPM")
	// ErrNoIdentity: the daemon has no signing key, from which the AK is
	// derived. The API answers 409.
	ErrNoIdentity = errors.New("no signing key")
	// ErrBusy: one TPM operation is running and the queue behind it is
	// full, or the wait for a turn ran out. The API answers 429.
	ErrBusy = errors.New("TPM busy: too many evidence requests")
)

// Defaults of Options.
const (
	DefaultQueue     = 4
	DefaultWait      = 5 * time.Second
	DefaultOpTimeout = 15 * time.Second
	// quoteTries bounds the quotes taken when the PCRs move between the
	// read and the quote.
	quoteTries = 3
)

// Options configure a TPM.
type Options struct {
	// Open opens a connection to the TPM; an error wrapping tpmio.ErrAbsent
	// becomes ErrNoTPM. Nil: there is no TPM.
	Open func(ctx context.Context) (tpmio.Conn, error)
	// Secret is the daemon-only secret the AK is derived from; nil: no
	// signing identity (ErrNoIdentity).
	Secret []byte
	// PCRs are the SHA-256 PCRs quoted.
	PCRs []int
	// VerdictLog, when set, is the verdict log (core/verdict) of PCR
	// VerdictPCR: New adds the PCR to PCRs, and each quote carries the log
	// as read in the same turn, so that it replays to the quoted value.
	VerdictLog string
	VerdictPCR int
	// Queue is how many requests may wait behind the running one
	// (DefaultQueue); Wait how long one may wait (DefaultWait); OpTimeout
	// bounds one TPM operation (DefaultOpTimeout).
	Queue     int
	Wait      time.Duration
	OpTimeout time.Duration
}

// TPM quotes with the daemon's AK, one operation at a time.
type TPM struct {
	opts  Options
	slots chan struct{} // running + queued
	turn  chan struct{} // the running one

	mu     sync.Mutex
	public *AKPublic // cached: the AK is deterministic
}

// New returns a TPM for opts.
func New(opts Options) *TPM {
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultWait
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	if opts.VerdictLog != "" && !slices.Contains(opts.PCRs, opts.VerdictPCR) {
		opts.PCRs = append(slices.Clone(opts.PCRs), opts.VerdictPCR)
	}
	return &TPM{opts: opts, slots: make(chan struct{}, 1+opts.Queue), turn: make(chan struct{}, 1)}
}

// Quote is one quote as the TPM returned it.
type Quote struct {
	Attest    []byte         // TPMS_ATTEST
	Signature []byte         // TPMT_SIGNATURE
	PCRs      map[int][]byte // the quoted SHA-256 values
	AK        AKPublic
	// VerdictPCR and VerdictLog: the verdict PCR and its log as read in
	// the quote's turn; nil without a verdict log.
	VerdictPCR *int
	VerdictLog []byte
}

// acquire waits for the TPM's turn: ErrBusy at once when the queue is full,
// or after Wait.
func (t *TPM) acquire(ctx context.Context) (func(), error) {
	select {
	case t.slots <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	timer := time.NewTimer(t.opts.Wait)
	defer timer.Stop()
	select {
	case t.turn <- struct{}{}:
		return func() { <-t.turn; <-t.slots }, nil
	case <-ctx.Done():
		<-t.slots
		return nil, ctx.Err()
	case <-timer.C:
		<-t.slots
		return nil, ErrBusy
	}
}

// with runs f on a fresh TPM connection holding the derived AK, in the
// TPM's turn, within OpTimeout.
func (t *TPM) with(ctx context.Context, f func(tp transport.TPM, ak *AK) error) error {
	if t.opts.Open != nil && len(t.opts.Secret) == 0 {
		return fmt.Errorf("%w: set signing_key_path; the AK is derived from that key so that only the daemon can use it", ErrNoIdentity)
	}
	return t.exclusive(ctx, true, func(tp transport.TPM) error {
		ak, err := createAK(tp, t.opts.Secret)
		if err != nil {
			return err
		}
		defer ak.flush(tp)
		return f(tp, ak)
	})
}

// Exclusive runs f on a fresh TPM connection in the TPM's turn, within
// OpTimeout: no quote runs meanwhile, so what f extends and records is
// seen by a quote entirely or not at all. It takes no place in the
// requests' queue and is never refused as busy: it waits, as long as ctx
// allows, behind at most the running operation and the queued ones, so a
// flood of evidence requests delays it but cannot keep it out.
func (t *TPM) Exclusive(ctx context.Context, f func(tp transport.TPM) error) error {
	return t.exclusive(ctx, false, f)
}

func (t *TPM) exclusive(ctx context.Context, queued bool, f func(tp transport.TPM) error) error {
	if t.opts.Open == nil {
		return fmt.Errorf("%w: no TPM is configured (evidence_tpm_device, evidence_tpm_socket)", ErrNoTPM)
	}
	release := func() { <-t.turn }
	if queued {
		var err error
		if release, err = t.acquire(ctx); err != nil {
			return err
		}
	} else {
		select {
		case t.turn <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("wait for the TPM: %w", ctx.Err())
		}
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	conn, err := t.open(ctx)
	if err != nil {
		if errors.Is(err, tpmio.ErrAbsent) {
			return fmt.Errorf("%w: %w", ErrNoTPM, err)
		}
		return fmt.Errorf("open TPM: %w", err)
	}
	defer conn.Close()
	return f(tpmio.Bind(ctx, conn, tpmio.Policy{Retries: 3, Delay: 50 * time.Millisecond}))
}

// open opens the TPM, trying again while a swtpm socket, which accepts one
// connection at a time, has not yet returned to accept the next one
// (EAGAIN right after the previous connection closed).
func (t *TPM) open(ctx context.Context) (tpmio.Conn, error) {
	for try := 0; ; try++ {
		conn, err := t.opts.Open(ctx)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || try >= openTries {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// openTries bounds the retries of open.
const openTries = 50

// AK returns the public part of the daemon's AK.
func (t *TPM) AK(ctx context.Context) (AKPublic, error) {
	t.mu.Lock()
	p := t.public
	t.mu.Unlock()
	if p != nil {
		return *p, nil
	}
	var out AKPublic
	err := t.with(ctx, func(_ transport.TPM, ak *AK) error {
		var err error
		out, err = ak.Describe()
		return err
	})
	if err != nil {
		return AKPublic{}, err
	}
	t.remember(out)
	return out, nil
}

func (t *TPM) remember(p AKPublic) {
	t.mu.Lock()
	t.public = &p
	t.mu.Unlock()
}

// Quote quotes the configured PCRs with qualifying data qd, and reads the
// values quoted: when the PCRs move between the read and the quote (the
// quote's pcrDigest is not the digest of the values read) it tries again.
func (t *TPM) Quote(ctx context.Context, qd []byte) (*Quote, error) {
	var out *Quote
	err := t.with(ctx, func(tp transport.TPM, ak *AK) error {
		pub, err := ak.Describe()
		if err != nil {
			return err
		}
		t.remember(pub)
		for i := 0; i < quoteTries; i++ {
			q, err := quoteOnce(tp, ak, t.opts.PCRs, qd)
			if err != nil {
				return err
			}
			a, err := attest.ParseAttest(q.Attest)
			if err != nil {
				return fmt.Errorf("the TPM's quote does not parse: %w", err)
			}
			if a.Quote != nil && bytes.Equal(a.Quote.PCRDigest, attest.PCRDigest(q.PCRs)) {
				q.AK = pub
				out = q
				return t.attachLog(q)
			}
		}
		return fmt.Errorf("the PCRs kept changing during %d quotes", quoteTries)
	})
	return out, err
}

// attachLog reads the verdict log into q (no file yet: an empty log).
func (t *TPM) attachLog(q *Quote) error {
	if t.opts.VerdictLog == "" {
		return nil
	}
	pcr := t.opts.VerdictPCR
	q.VerdictPCR, q.VerdictLog = &pcr, []byte{}
	f, err := os.OpenFile(t.opts.VerdictLog, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("verdict log: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxVerdictLog+1))
	if err != nil {
		return fmt.Errorf("verdict log: %w", err)
	}
	if len(b) > MaxVerdictLog {
		return fmt.Errorf("verdict log %s is larger than %d bytes", t.opts.VerdictLog, MaxVerdictLog)
	}
	q.VerdictLog = b
	return nil
}

// MaxVerdictLog bounds a verdict log (verdict.MaxLog is this value).
const MaxVerdictLog = 4 << 20

func quoteOnce(tp transport.TPM, ak *AK, pcrs []int, qd []byte) (*Quote, error) {
	values, err := readPCRs(tp, pcrs)
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak.handle, Name: ak.name, Auth: ak.session()},
		QualifyingData: tpm2.TPM2BData{Buffer: qd},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      selection(pcrs),
	}.Execute(tp)
	if err != nil {
		return nil, fmt.Errorf("TPM2_Quote of SHA-256 PCRs %v: %w", pcrs, err)
	}
	return &Quote{Attest: rsp.Quoted.Bytes(), Signature: tpm2.Marshal(rsp.Signature), PCRs: values}, nil
}

func selection(pcrs []int) tpm2.TPMLPCRSelection {
	sel := attest.NewPCRSelection(attest.AlgSHA256, pcrs)
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: sel.Bitmap}}}
}

// readPCRs reads each PCR with its own TPM2_PCR_Read, so that no TPM's
// per-call limit on returned values matters.
func readPCRs(tp transport.TPM, pcrs []int) (map[int][]byte, error) {
	out := make(map[int][]byte, len(pcrs))
	for _, p := range pcrs {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: selection([]int{p})}.Execute(tp)
		if err != nil {
			return nil, fmt.Errorf("TPM2_PCR_Read of SHA-256 PCR %d: %w", p, err)
		}
		if len(rsp.PCRValues.Digests) != 1 || len(rsp.PCRValues.Digests[0].Buffer) != 32 {
			return nil, fmt.Errorf("TPM2_PCR_Read of SHA-256 PCR %d returned no SHA-256 value: is the SHA-256 bank allocated?", p)
		}
		out[p] = append([]byte(nil), rsp.PCRValues.Digests[0].Buffer...)
	}
	return out, nil
}

// ReadPCR reads one SHA-256 PCR.
func ReadPCR(tp transport.TPM, pcr int) ([]byte, error) {
	v, err := readPCRs(tp, []int{pcr})
	if err != nil {
		return nil, err
	}
	return v[pcr], nil
}

// ExtendPCR extends the SHA-256 bank of pcr with digest.
func ExtendPCR(tp transport.TPM, pcr int, digest []byte) error {
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest}}},
	}.Execute(tp)
	if err != nil {
		return fmt.Errorf("TPM2_PCR_Extend of SHA-256 PCR %d: %w", pcr, err)
	}
	return nil
}

package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/plugins/tpm/attest"
	"github.com/secure-ai/runtime-attestor/plugins/tpm/tpmio"
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
	return &TPM{opts: opts, slots: make(chan struct{}, 1+opts.Queue), turn: make(chan struct{}, 1)}
}

// Quote is one quote as the TPM returned it.
type Quote struct {
	Attest    []byte         // TPMS_ATTEST
	Signature []byte         // TPMT_SIGNATURE
	PCRs      map[int][]byte // the quoted SHA-256 values
	AK        AKPublic
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
	if t.opts.Open == nil {
		return fmt.Errorf("%w: no TPM is configured (evidence_tpm_device, evidence_tpm_socket)", ErrNoTPM)
	}
	if len(t.opts.Secret) == 0 {
		return fmt.Errorf("%w: set signing_key_path; the AK is derived from that key so that only the daemon can use it", ErrNoIdentity)
	}
	release, err := t.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	conn, err := t.opts.Open(ctx)
	if err != nil {
		if errors.Is(err, tpmio.ErrAbsent) {
			return fmt.Errorf("%w: %w", ErrNoTPM, err)
		}
		return fmt.Errorf("open TPM: %w", err)
	}
	defer conn.Close()
	tp := tpmio.Bind(ctx, conn, tpmio.Policy{Retries: 3, Delay: 50 * time.Millisecond})
	ak, err := createAK(tp, t.opts.Secret)
	if err != nil {
		return err
	}
	defer ak.flush(tp)
	return f(tp, ak)
}

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
				return nil
			}
		}
		return fmt.Errorf("the PCRs kept changing during %d quotes", quoteTries)
	})
	return out, err
}

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

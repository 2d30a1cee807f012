package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// The keyed chain. Every record with seq s carries
//
//	mac = hex(HMAC-SHA256(k_s, JCS({data, prev, seq, time, type})))
//
// where k_first = HMAC-SHA256(seed, "runtime-attestor audit k1") and
// k_(s+1) = HMAC-SHA256(k_s, "next"). The seed is made once, handed to the
// operator (Seed file) and never kept by the daemon, which keeps only the
// key of the next record (keyFile): whoever takes the machine when record
// n is the next one to write holds k_n and no earlier key, so can forge no
// record before n, while the holder of the seed checks every MAC.
//
// The key evolves per record, not per epoch: a record costs two HMACs and
// one 64-byte pwrite+fdatasync of the key file beside the record's own
// write+fsync; the records are few (refused requests are coalesced), and
// per record no window exists in which the machine holds a key that could
// rewrite records already written. The key file is written after the
// record is durable, so after a crash the key is at most one record behind
// the log and is evolved forward at Open; never ahead of it.

const (
	keyLabel   = "runtime-attestor audit k1"
	nextLabel  = "next"
	keySize    = sha256.Size
	slotSize   = 64
	slotMagic  = "RAAUDK01"
	seedFormat = 1
)

// Seed is what the operator keeps to check the MACs: the seed and the seq
// of the first record keyed with it. Its file is JSON.
type Seed struct {
	Version  int    `json:"version"`
	Seed     string `json:"seed"`
	FirstSeq uint64 `json:"first_seq"`
}

// firstKey returns k_FirstSeq.
func (s Seed) firstKey() ([]byte, error) {
	raw, err := hex.DecodeString(s.Seed)
	if err != nil || len(raw) != keySize {
		return nil, errors.New("seed is not 64 hex digits")
	}
	return macSum(raw, []byte(keyLabel)), nil
}

// ReadSeed reads a seed file written by the daemon (<audit_key_path>.seed).
func ReadSeed(path string) (Seed, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("read audit seed: %w", err)
	}
	var s Seed
	if err := json.Unmarshal(raw, &s); err != nil {
		return Seed{}, fmt.Errorf("audit seed %s: not a seed file: %w", path, err)
	}
	if s.Version != seedFormat || s.FirstSeq == 0 {
		return Seed{}, fmt.Errorf("audit seed %s: version %d, first_seq %d: not a seed file this verifier knows", path, s.Version, s.FirstSeq)
	}
	if _, err := s.firstKey(); err != nil {
		return Seed{}, fmt.Errorf("audit seed %s: %w", path, err)
	}
	return s, nil
}

func macSum(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// evolve returns k_(s+1) from k_s and wipes k_s.
func evolve(k []byte) []byte {
	next := macSum(k, []byte(nextLabel))
	clear(k)
	return next
}

// keyState is the daemon's side: the key of record seq, in a file of two
// 64-byte slots written in turn (slot seq%2), each
// magic(8) | seq(8, big endian) | key(32) | SHA-256(first 48)[:16], so that
// a write torn by a crash leaves the other slot whole.
type keyState struct {
	f   *os.File
	seq uint64
	key []byte
}

func encodeSlot(seq uint64, key []byte) []byte {
	b := make([]byte, 0, slotSize)
	b = append(b, slotMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, key...)
	sum := sha256.Sum256(b)
	return append(b, sum[:16]...)
}

func decodeSlot(b []byte) (uint64, []byte, bool) {
	if len(b) != slotSize || !bytes.Equal(b[:8], []byte(slotMagic)) {
		return 0, nil, false
	}
	sum := sha256.Sum256(b[:48])
	if !hmac.Equal(sum[:16], b[48:]) {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(b[8:16]), append([]byte(nil), b[16:48]...), true
}

// loadKey opens the key file at path. ok is false when it does not exist.
func loadKey(path string) (*keyState, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open audit key %s: %w", path, err)
	}
	st, err := f.Stat()
	if err == nil && (!st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0) {
		err = fmt.Errorf("not a regular file of mode 0600 (mode %#o); run chmod 0600 %s", st.Mode().Perm(), path)
	}
	buf := make([]byte, 2*slotSize)
	if err == nil {
		_, err = io.ReadFull(f, buf)
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("audit key %s: %w", path, err)
	}
	ks := &keyState{f: f}
	found := false
	for i := 0; i < 2; i++ {
		if seq, key, ok := decodeSlot(buf[i*slotSize : (i+1)*slotSize]); ok && (!found || seq > ks.seq) {
			ks.seq, ks.key, found = seq, key, true
		}
	}
	clear(buf)
	if !found {
		f.Close()
		return nil, false, fmt.Errorf("audit key %s: no valid slot (damaged file)", path)
	}
	return ks, true, nil
}

// createKey makes a new seed whose first key MACs record first, stores that
// key at path and the seed at seedPath (mode 0400), and returns the state.
func createKey(path, seedPath string, first uint64, sy syncer) (*keyState, error) {
	raw := make([]byte, keySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("make audit seed: %w", err)
	}
	seed := Seed{Version: seedFormat, Seed: hex.EncodeToString(raw), FirstSeq: first}
	clear(raw)
	k, err := seed.firstKey()
	if err != nil {
		return nil, err
	}
	js, _ := json.Marshal(seed)
	if err := writeNew(seedPath, append(js, '\n'), 0o400, sy); err != nil {
		return nil, fmt.Errorf("write audit seed: %w", err)
	}
	seed.Seed = ""
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	ks := &keyState{f: f, seq: first, key: k}
	if err := ks.store(sy); err != nil {
		f.Close()
		return nil, err
	}
	// The other slot: a valid older slot must never exist.
	if _, err := f.WriteAt(make([]byte, slotSize), int64((first+1)%2)*slotSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("write audit key: %w", err)
	}
	if err := sy.file(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync audit key: %w", err)
	}
	return ks, nil
}

func writeNew(path string, data []byte, mode os.FileMode, sy syncer) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = sy.file(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// store writes the current key into its slot and syncs it.
func (ks *keyState) store(sy syncer) error {
	if _, err := ks.f.WriteAt(encodeSlot(ks.seq, ks.key), int64(ks.seq%2)*slotSize); err != nil {
		return fmt.Errorf("write audit key: %w", err)
	}
	if err := sy.file(ks.f); err != nil {
		return fmt.Errorf("sync audit key: %w", err)
	}
	return nil
}

// advanceTo evolves the key forward to the key of record seq (no-op when
// already there; an error when seq is behind it).
func (ks *keyState) advanceTo(seq uint64) error {
	if seq < ks.seq {
		return fmt.Errorf("audit key is for record %d, past record %d", ks.seq, seq)
	}
	for ks.seq < seq {
		ks.key = evolve(ks.key)
		ks.seq++
	}
	return nil
}

// mac returns the MAC of a record body (without mac and hash) for record
// ks.seq.
func (ks *keyState) mac(b body) (string, error) {
	c, err := canonicalBody(b)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(macSum(ks.key, c)), nil
}

func (ks *keyState) close() {
	if ks == nil {
		return
	}
	clear(ks.key)
	if ks.f != nil {
		ks.f.Close()
	}
}

// macChecker follows the keys of a log for Verify with the seed.
type macChecker struct {
	seq uint64 // the key's record
	key []byte
}

func newMACChecker(s Seed) (*macChecker, error) {
	k, err := s.firstKey()
	if err != nil {
		return nil, err
	}
	return &macChecker{seq: s.FirstSeq, key: k}, nil
}

// check verifies r's MAC; "" when it is right.
func (m *macChecker) check(r *Record) string {
	if r.Seq < m.seq {
		return "" // before the seed's first record, or a reorder the chain reports
	}
	if r.Mac == "" {
		return fmt.Sprintf("no mac, but the seed keys every record from seq %d (the MACs were stripped)", m.seq)
	}
	for m.seq < r.Seq {
		m.key = evolve(m.key)
		m.seq++
	}
	c, err := canonicalBody(body{Seq: r.Seq, Time: r.Time, Type: r.Type, Data: r.Data, Prev: r.Prev})
	if err != nil {
		return fmt.Sprintf("cannot encode record: %v", err)
	}
	want := macSum(m.key, c)
	got, err := hex.DecodeString(r.Mac)
	if err != nil || !hmac.Equal(got, want) {
		return "mac does not match the seed's key for this seq: the record was written or rewritten without the daemon's key"
	}
	return ""
}

package api

import (
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/engine"
)

// TypeRefreshRefused is the audit record of refused refresh requests,
// coalesced: one per peer per interval, with a count.
const TypeRefreshRefused = "refresh_refused"

// Coalescing defaults.
const (
	DefaultNoiseInterval = time.Minute
	// DefaultNoisePeers bounds the peers tracked per interval; the refusals
	// of any further peer are folded into one "other peers" record, so an
	// interval never yields more than DefaultNoisePeers+1 records however
	// many source addresses a caller can use.
	DefaultNoisePeers = 64
	otherPeers        = "*"
)

// refusedAudit is one refresh_refused record.
type refusedAudit struct {
	Peer    string         `json:"peer"`
	UID     *int           `json:"peer_uid,omitempty"`
	PID     *int           `json:"peer_pid,omitempty"`
	Count   uint64         `json:"count"`
	First   string         `json:"first"`
	Last    string         `json:"last"`
	Reasons map[string]int `json:"reasons"`
	// Peers counts the distinct peers folded into an "other peers" record.
	Peers int `json:"peers,omitempty"`
}

// refusals coalesces refused requests into refresh_refused records: the
// first refusal of a peer opens its window, and when the window closes one
// record says how many there were, when, and why. Nothing is written per
// request, so a flood of refused requests costs memory bounded by the
// number of peers tracked and one record per peer per interval.
type refusals struct {
	audit    engine.Auditor
	log      hclog.Logger
	interval time.Duration
	maxPeers int
	now      func() time.Time

	mu     sync.Mutex
	peers  map[string]*refusal
	timer  *time.Timer
	closed bool
}

type refusal struct {
	peer        Peer
	count       uint64
	first, last time.Time
	reasons     map[string]int
	keys        map[string]struct{} // only for the "other peers" entry
}

func newRefusals(a engine.Auditor, log hclog.Logger, interval time.Duration, maxPeers int) *refusals {
	if interval <= 0 {
		interval = DefaultNoiseInterval
	}
	if maxPeers <= 0 {
		maxPeers = DefaultNoisePeers
	}
	return &refusals{audit: a, log: log, interval: interval, maxPeers: maxPeers, now: time.Now, peers: map[string]*refusal{}}
}

// add counts one refusal of p for reason.
func (r *refusals) add(p Peer, reason string) {
	if r.audit == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	key := p.Key()
	e := r.peers[key]
	if e == nil {
		if len(r.peers) >= r.maxPeers {
			e = r.other()
			e.keys[key] = struct{}{}
		} else {
			e = &refusal{peer: p, first: r.now(), reasons: map[string]int{}}
			r.peers[key] = e
		}
	}
	e.count++
	e.last = r.now()
	if len(e.reasons) < 8 || e.reasons[reason] > 0 {
		e.reasons[reason]++
	} else {
		e.reasons["other"]++
	}
	if r.timer == nil {
		r.timer = time.AfterFunc(r.interval, r.flush)
	}
}

func (r *refusals) other() *refusal {
	e := r.peers[otherPeers]
	if e == nil {
		e = &refusal{peer: Peer{Addr: "other peers", UID: -1, PID: -1}, first: r.now(), reasons: map[string]int{}, keys: map[string]struct{}{}}
		r.peers[otherPeers] = e
	}
	return e
}

// flush writes one record per peer seen since the last flush.
func (r *refusals) flush() {
	r.mu.Lock()
	peers := r.peers
	r.peers = map[string]*refusal{}
	r.timer = nil
	r.mu.Unlock()
	keys := make([]string, 0, len(peers))
	for k := range peers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := peers[k]
		rec := refusedAudit{
			Peer: e.peer.coalesced(), Count: e.count, Reasons: e.reasons, Peers: len(e.keys),
			First: e.first.UTC().Format(time.RFC3339Nano), Last: e.last.UTC().Format(time.RFC3339Nano),
		}
		if e.peer.unix {
			uid, pid := e.peer.UID, e.peer.PID
			rec.UID, rec.PID = &uid, &pid
		}
		if err := r.audit.Append(TypeRefreshRefused, rec); err != nil {
			r.log.Warn("could not audit refused refresh requests", "peer", rec.Peer, "count", rec.Count, "error", err)
		}
	}
}

// close writes what is pending and stops coalescing.
func (r *refusals) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.flush()
}

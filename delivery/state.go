package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cuemta/cuemta/internal/atomicfile"
	"github.com/cuemta/cuemta/rules"
)

// Shaping state that must outlive the process: suspensions (by the
// operator or a rule, throttle back-off pauses included), rule throttles
// of lanes and providers, back-off levels and the threshold windows of the
// response rules. A restart that forgot a Yahoo TSS04 two-hour suspension
// would send again at once, which is what the suspension was for.
//
// The scheduler saves the whole state (it is small: what is in force now)
// every time a suspension, throttle or back-off level changes, before the
// change takes effect for the caller: an admin Suspend that returned is on
// disk. Threshold windows change with every matching reply, so they are
// saved at most once a second while they change (stateFlushInterval): a
// crash loses at most that second of matches. Saving replaces the file
// atomically (internal/atomicfile), so it is always either the old state
// or the new one.

// State is the shaping state as saved.
type State struct {
	Version     int                   `json:"version"`
	Saved       time.Time             `json:"saved"`
	Suspensions map[string]suspension `json:"suspensions,omitempty"`
	Throttles   map[string]throttle   `json:"throttles,omitempty"` // "source:SITE/SOURCE" or "provider:NAME/SOURCE"
	Backoff     map[string]int        `json:"backoff,omitempty"`   // by lane key SITE/SOURCE
	Windows     []rules.Window        `json:"windows,omitempty"`
}

const stateVersion = 1

// StateFile is where the scheduler keeps its State.
type StateFile interface {
	Load() (*State, error)
	Save(*State) error
}

// JSONStateFile keeps the state as JSON in one file.
type JSONStateFile struct{ Path string }

// Load reads the state; a missing file is an empty state, a damaged one an
// error that names the file (the scheduler does not start on a guess).
func (f JSONStateFile) Load() (*State, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shaping state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("shaping state %s is damaged (%v); move it away to start without it", f.Path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("shaping state %s has version %d, this cuemta reads %d", f.Path, st.Version, stateVersion)
	}
	return &st, nil
}

// Save replaces the file durably.
func (f JSONStateFile) Save(st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("shaping state: %w", err)
	}
	return atomicfile.Write(f.Path, b, 0o600)
}

// stateSaver serialises saves and remembers what the last one covered.
type stateSaver struct {
	mu          sync.Mutex
	lastChanges uint64 // tracker changes covered by the last save
	failing     bool
}

// stateFlushInterval is how often changed threshold windows are saved.
const stateFlushInterval = time.Second

// restore applies a loaded state: suspensions at once, lane and provider
// state when they are first used, threshold windows to the tracker.
func (e *Scheduler) restore(st *State) {
	if st == nil {
		return
	}
	now := e.opts.Now()
	for k, s := range st.Suspensions {
		if now.Before(s.Until) {
			e.suspended[k] = s
		}
	}
	for k, t := range st.Throttles {
		if t.active(now) {
			e.restoredThrottles[k] = t
		}
	}
	for k, n := range st.Backoff {
		e.restoredBackoff[k] = n
	}
	e.tracker.Import(st.Windows)
	e.state.lastChanges = e.tracker.Changes()
	e.opts.Logger.Info("shaping state restored", "saved", st.Saved, "suspensions", len(e.suspended),
		"throttles", len(e.restoredThrottles), "backoff", len(e.restoredBackoff), "threshold_windows", len(st.Windows))
}

// claimLaneState gives a new lane its restored throttle and back-off.
func (e *Scheduler) claimLaneState(l *lane) {
	e.mu.Lock()
	t, hasT := e.restoredThrottles[ScopeSource+":"+l.key]
	delete(e.restoredThrottles, ScopeSource+":"+l.key)
	b := e.restoredBackoff[l.key]
	delete(e.restoredBackoff, l.key)
	e.mu.Unlock()
	l.mu.Lock()
	if hasT {
		l.thr = t
	}
	l.backoff = b
	l.mu.Unlock()
}

// snapshotState gathers the state in force now.
func (e *Scheduler) snapshotState() *State {
	now := e.opts.Now()
	st := &State{Version: stateVersion, Saved: now, Suspensions: map[string]suspension{},
		Throttles: map[string]throttle{}, Backoff: map[string]int{}}
	e.mu.Lock()
	for k, s := range e.suspended {
		if now.Before(s.Until) {
			st.Suspensions[k] = s
		}
	}
	for k, t := range e.restoredThrottles {
		if t.active(now) {
			st.Throttles[k] = t
		}
	}
	for k, n := range e.restoredBackoff {
		st.Backoff[k] = n
	}
	providers := make([]*provider, 0, len(e.providers))
	for _, p := range e.providers {
		providers = append(providers, p)
	}
	e.mu.Unlock()
	for _, p := range providers {
		p.mu.Lock()
		if p.thr.active(now) {
			st.Throttles[ScopeProvider+":"+providerKey(p.name, p.source)] = p.thr
		}
		p.mu.Unlock()
	}
	for _, l := range e.allLanes() {
		l.mu.Lock()
		if l.thr.active(now) {
			st.Throttles[ScopeSource+":"+l.key] = l.thr
		}
		if l.backoff > 0 {
			st.Backoff[l.key] = l.backoff
		}
		l.mu.Unlock()
	}
	st.Windows = e.tracker.Export()
	return st
}

// saveState writes the state in force now, if the scheduler has a file.
// A failed save is logged (and retried by the next change or flush); the
// change itself stays in force in memory.
func (e *Scheduler) saveState() {
	if e.opts.State == nil {
		return
	}
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	changes := e.tracker.Changes()
	err := e.opts.State.Save(e.snapshotState())
	switch {
	case err != nil && !e.state.failing:
		e.opts.Logger.Error("shaping state not saved; a restart now would forget it", "err", err)
		e.state.failing = true
	case err == nil:
		if e.state.failing {
			e.opts.Logger.Info("shaping state saved again")
		}
		e.state.failing = false
		e.state.lastChanges = changes
	}
}

// flushState saves the state when threshold windows changed since the
// last save, or when the last save failed.
func (e *Scheduler) flushState() {
	if e.opts.State == nil {
		return
	}
	e.state.mu.Lock()
	dirty := e.state.failing || e.tracker.Changes() != e.state.lastChanges
	e.state.mu.Unlock()
	if dirty {
		e.saveState()
	}
}

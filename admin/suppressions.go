package admin

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cuemta/cuemta/suppress"
)

// The suppression list endpoints (see docs/operations.md):
//
//	GET    /api/v1/suppressions[?tenant=T][&address=A][&format=json|jsonl|csv][&limit=N]
//	POST   /api/v1/suppressions            {"entries": [{"address": ..., "tenant": ..., ...}]}
//	DELETE /api/v1/suppressions/{address}[?tenant=T]
//
// Import is a POST of JSON entries (the CLI reads CSV or JSON lines and
// sends batches of them): a state-changing request stays JSON, as the
// CSRF rules of csrf.go require. Export is a GET in jsonl or csv.

// WithSuppressions serves the suppression list endpoints on list; without
// it they answer 404.
func WithSuppressions(list *suppress.Store) Option {
	return func(o *options) { o.suppressions = list }
}

const (
	defaultSuppressionLimit = 1000
	maxSuppressionLimit     = 100000
	// maxSuppressionBatch bounds the entries of one POST.
	maxSuppressionBatch = 10000
	// maxSuppressionBody bounds a POST: a batch of entries at their
	// largest address and a long reason.
	maxSuppressionBody = 8 << 20
)

// CSVHeader is the header line of a CSV export and import.
var CSVHeader = []string{"tenant", "address", "source", "reason", "added", "expires"}

func (s *Server) suppressionList(w http.ResponseWriter) *suppress.Store {
	if s.opts.suppressions == nil {
		writeError(w, http.StatusNotFound, "this server keeps no suppression list", nil)
	}
	return s.opts.suppressions
}

type suppressionsResponse struct {
	Suppressions []suppress.Entry `json:"suppressions"`
	Count        int              `json:"count"`     // matching entries, listed or not
	Truncated    bool             `json:"truncated"` // more matched than limit
}

func (s *Server) handleSuppressionList(w http.ResponseWriter, r *http.Request) {
	list := s.suppressionList(w)
	if list == nil {
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	limit := defaultSuppressionLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSuppressionLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q is not a number from 1 to %d", v, maxSuppressionLimit), nil)
			return
		}
		limit = n
	}
	tenant, byTenant := q.Get("tenant"), q.Has("tenant")
	addr := suppress.Normalize(q.Get("address"))
	match := func(e suppress.Entry) bool {
		return (!byTenant || e.Tenant == tenant) && (addr == "" || e.Address == addr)
	}
	switch format {
	case "", "json":
		resp := suppressionsResponse{Suppressions: []suppress.Entry{}}
		list.Each(func(e suppress.Entry) bool {
			if match(e) {
				resp.Count++
				if len(resp.Suppressions) < limit {
					resp.Suppressions = append(resp.Suppressions, e)
				}
			}
			return true
		})
		resp.Truncated = resp.Count > len(resp.Suppressions)
		writeJSON(w, http.StatusOK, resp)
	case "jsonl":
		// The whole list is copied out first: Each holds the list's read
		// lock, which must not wait on a slow client.
		var out []suppress.Entry
		list.Each(func(e suppress.Entry) bool {
			if match(e) {
				out = append(out, e)
			}
			return true
		})
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, e := range out {
			if enc.Encode(e) != nil {
				return
			}
		}
	case "csv":
		var out []suppress.Entry
		list.Each(func(e suppress.Entry) bool {
			if match(e) {
				out = append(out, e)
			}
			return true
		})
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		cw := csv.NewWriter(w)
		cw.Write(CSVHeader)
		for _, e := range out {
			cw.Write(CSVRecord(e))
		}
		cw.Flush()
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q is not json, jsonl or csv", format), nil)
	}
}

// CSVRecord is an entry as a CSV row under CSVHeader.
func CSVRecord(e suppress.Entry) []string {
	expires := ""
	if !e.Expires.IsZero() {
		expires = e.Expires.UTC().Format(time.RFC3339)
	}
	return []string{e.Tenant, e.Address, e.Source, e.Reason, e.Added.UTC().Format(time.RFC3339), expires}
}

// SuppressionEntry is one entry of a POST: Source "" is "operator",
// Added zero is now, Expires zero is never.
type SuppressionEntry struct {
	Tenant  string    `json:"tenant"`
	Address string    `json:"address"`
	Reason  string    `json:"reason,omitempty"`
	Source  string    `json:"source,omitempty"`
	Added   time.Time `json:"added,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
}

// SuppressRequest is the body of POST /api/v1/suppressions.
type SuppressRequest struct {
	Entries []SuppressionEntry `json:"entries"`
}

// SuppressResponse answers a POST.
type SuppressResponse struct {
	Added int `json:"added"`
}

func (s *Server) handleSuppress(w http.ResponseWriter, r *http.Request) {
	list := s.suppressionList(w)
	if list == nil {
		return
	}
	var req SuppressRequest
	if e := decodeJSON(w, r, maxSuppressionBody, strict, &req); e != nil {
		e.write(w)
		return
	}
	if len(req.Entries) == 0 || len(req.Entries) > maxSuppressionBatch {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("entries: want 1 to %d entries, got %d", maxSuppressionBatch, len(req.Entries)), nil)
		return
	}
	entries := make([]suppress.Entry, len(req.Entries))
	var problems []string
	now := s.opts.now()
	for i, in := range req.Entries {
		e := suppress.Entry{Tenant: in.Tenant, Address: suppress.Normalize(in.Address), Reason: in.Reason,
			Source: in.Source, Added: in.Added, Expires: in.Expires}
		if e.Source == "" {
			e.Source = suppress.SourceOperator
		}
		if e.Added.IsZero() {
			e.Added = now
		}
		if err := suppress.Check(&e); err != nil {
			problems = append(problems, fmt.Sprintf("entry %d: %v", i+1, err))
		}
		entries[i] = e
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad suppression entries, none added: %s", strings.Join(problems, "; ")), problems)
		return
	}
	err := list.Add(entries...)
	ev := ActionEvent{Action: ActionSuppress, Count: len(entries), Err: err}
	if len(entries) == 1 {
		ev.Address, ev.Scope, ev.Key, ev.Reason = entries[0].Address, "tenant", entries[0].Tenant, entries[0].Reason
	}
	s.record(r, ev)
	if err != nil {
		s.backendError(w, r, "cannot add to the suppression list", err)
		return
	}
	writeJSON(w, http.StatusOK, SuppressResponse{Added: len(entries)})
}

// UnsuppressResponse answers a DELETE.
type UnsuppressResponse struct {
	Tenant  string `json:"tenant"`
	Address string `json:"address"`
	Removed bool   `json:"removed"`
}

func (s *Server) handleUnsuppress(w http.ResponseWriter, r *http.Request) {
	list := s.suppressionList(w)
	if list == nil {
		return
	}
	tenant, addr := r.URL.Query().Get("tenant"), suppress.Normalize(r.PathValue("address"))
	if err := checkKey("address", addr); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	ok, err := list.Remove(tenant, addr)
	if err == nil && !ok {
		err = ErrNotFound
	}
	s.record(r, ActionEvent{Action: ActionUnsuppress, Address: addr, Scope: "tenant", Key: tenant, Err: err})
	if err != nil {
		what := "cannot remove " + addr + " from the suppression list"
		if tenant != "" {
			what += " of tenant " + tenant
		}
		if errors.Is(err, ErrNotFound) {
			writeError(w, http.StatusNotFound, what+": not on it", nil)
			return
		}
		s.backendError(w, r, what, err)
		return
	}
	writeJSON(w, http.StatusOK, UnsuppressResponse{Tenant: tenant, Address: addr, Removed: true})
}

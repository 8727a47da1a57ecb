package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cuemta/cuemta/suppress"
)

// SuppressionsList is the reply of GET /api/v1/suppressions.
type SuppressionsList = suppressionsResponse

// SuppressionQuery selects entries: Tenant applies when ByTenant (so that
// the global list, tenant "", can be chosen), Address when not "".
type SuppressionQuery struct {
	Tenant   string
	ByTenant bool
	Address  string
	Limit    int
}

func (q SuppressionQuery) values() url.Values {
	v := url.Values{}
	if q.ByTenant {
		v.Set("tenant", q.Tenant)
	}
	if q.Address != "" {
		v.Set("address", q.Address)
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return v
}

// Suppressions lists entries; raw is the reply as received.
func (c *Client) Suppressions(ctx context.Context, q SuppressionQuery) (list *SuppressionsList, raw []byte, err error) {
	list = &SuppressionsList{}
	raw, err = c.Do(ctx, http.MethodGet, "/api/v1/suppressions?"+q.values().Encode(), nil, list)
	return list, raw, err
}

// Suppress adds entries (at most 10,000 a call; ImportSuppressions
// batches).
func (c *Client) Suppress(ctx context.Context, entries []SuppressionEntry) (int, error) {
	var resp SuppressResponse
	_, err := c.Do(ctx, http.MethodPost, "/api/v1/suppressions", SuppressRequest{Entries: entries}, &resp)
	return resp.Added, err
}

// Unsuppress removes tenant's entry for addr; an *APIError of status 404
// says there was none.
func (c *Client) Unsuppress(ctx context.Context, tenant, addr string) error {
	path := "/api/v1/suppressions/" + url.PathEscape(addr)
	if tenant != "" {
		path += "?tenant=" + url.QueryEscape(tenant)
	}
	_, err := c.Do(ctx, http.MethodDelete, path, nil, nil)
	return err
}

// ExportSuppressions copies the entries q selects to w in format ("csv"
// or "jsonl"), streamed: a list of millions is never held in memory here.
func (c *Client) ExportSuppressions(ctx context.Context, q SuppressionQuery, format string, w io.Writer) error {
	v := q.values()
	v.Set("format", format)
	path := "/api/v1/suppressions?" + v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// An export of a large list may take longer than one call's timeout.
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return &UnreachableError{Addr: c.addr, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &APIError{Status: resp.StatusCode, Body: data}
		if json.Unmarshal(data, e) != nil || e.Msg == "" {
			e.Msg = resp.Status
		}
		return e
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// ImportSuppressions reads entries in format ("csv" with the CSVHeader
// columns, or "jsonl", one SuppressionEntry a line) and adds them in
// batches. Every entry is read and checked first, so a file with a bad
// entry adds nothing; source is set on entries that name none.
func (c *Client) ImportSuppressions(ctx context.Context, r io.Reader, format, source string) (int, error) {
	entries, err := ReadSuppressions(r, format)
	if err != nil {
		return 0, err
	}
	var problems []string
	for i := range entries {
		if entries[i].Source == "" {
			entries[i].Source = source
		}
		e := suppress.Entry{Tenant: entries[i].Tenant, Address: suppress.Normalize(entries[i].Address),
			Reason: entries[i].Reason, Source: entries[i].Source}
		if err := suppress.Check(&e); err != nil && len(problems) < 10 {
			problems = append(problems, fmt.Sprintf("entry %d: %v", i+1, err))
		}
	}
	if len(problems) > 0 {
		return 0, fmt.Errorf("nothing imported: %s", strings.Join(problems, "; "))
	}
	added := 0
	for len(entries) > 0 {
		n := min(len(entries), maxSuppressionBatch)
		k, err := c.Suppress(ctx, entries[:n])
		added += k
		if err != nil {
			return added, fmt.Errorf("after %d entries added: %w", added, err)
		}
		entries = entries[n:]
	}
	return added, nil
}

// ReadSuppressions parses an import file: "csv" (a header row naming at
// least the address column; columns from CSVHeader) or "jsonl".
func ReadSuppressions(r io.Reader, format string) ([]SuppressionEntry, error) {
	switch format {
	case "jsonl":
		var out []SuppressionEntry
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for line := 1; sc.Scan(); line++ {
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			var e SuppressionEntry
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				return nil, fmt.Errorf("line %d: %v", line, err)
			}
			out = append(out, e)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return out, nil
	case "csv":
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		head, err := cr.Read()
		if err != nil {
			return nil, fmt.Errorf("csv: no header row (want %s): %v", strings.Join(CSVHeader, ","), err)
		}
		col := map[string]int{}
		for i, h := range head {
			h = strings.ToLower(strings.TrimSpace(h))
			ok := false
			for _, known := range CSVHeader {
				ok = ok || h == known
			}
			if !ok {
				return nil, fmt.Errorf("csv: unknown column %q (known: %s)", h, strings.Join(CSVHeader, ","))
			}
			col[h] = i
		}
		if _, ok := col["address"]; !ok {
			return nil, fmt.Errorf("csv: the header row has no address column")
		}
		var out []SuppressionEntry
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("csv: %v", err)
			}
			line, _ := cr.FieldPos(0)
			get := func(name string) string {
				if i, ok := col[name]; ok && i < len(rec) {
					return strings.TrimSpace(rec[i])
				}
				return ""
			}
			e := SuppressionEntry{Tenant: get("tenant"), Address: get("address"), Source: get("source"), Reason: get("reason")}
			for _, t := range []struct {
				name string
				dst  *time.Time
			}{{"added", &e.Added}, {"expires", &e.Expires}} {
				if v := get(t.name); v != "" {
					if *t.dst, err = time.Parse(time.RFC3339, v); err != nil {
						return nil, fmt.Errorf("csv line %d: %s %q is not an RFC 3339 time", line, t.name, v)
					}
				}
			}
			out = append(out, e)
		}
	}
	return nil, fmt.Errorf("format %q is not csv or jsonl", format)
}

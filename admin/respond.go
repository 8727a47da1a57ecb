package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// errorBody is the body of every error response.
type errorBody struct {
	Error  string `json:"error"`
	Detail any    `json:"detail,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, status int, msg string, detail any) {
	writeJSON(w, status, errorBody{Error: msg, Detail: detail})
}

// backendError answers an error returned by the Backend.
func (s *Server) backendError(w http.ResponseWriter, r *http.Request, what string, err error) {
	status, msg := classify(err)
	if status >= 500 {
		s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, fmt.Sprintf("%s: %s", what, msg), detailOf(err))
}

// classify maps a Backend error to an HTTP status and a message.
func classify(err error) (int, string) {
	var re *RequestError
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.As(err, &re):
		return requestErrorStatus(re), re.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, err.Error()
	default:
		return http.StatusInternalServerError, err.Error()
	}
}

func requestErrorStatus(re *RequestError) int {
	switch {
	case re.Reply == nil:
		return http.StatusBadRequest
	case re.Reply.Temporary():
		return http.StatusServiceUnavailable
	default:
		return http.StatusUnprocessableEntity
	}
}

func detailOf(err error) any {
	var re *RequestError
	if errors.As(err, &re) && re.Reply != nil {
		return re
	}
	return nil
}

// Flags of decodeJSON.
const (
	strict   = 1 << iota // refuse unknown fields (our endpoints, to catch typos)
	optional             // an empty body is a zero value
)

// apiError is an error response not yet written.
type apiError struct {
	status int
	msg    string
	detail any
}

func (e *apiError) write(w http.ResponseWriter) { writeError(w, e.status, e.msg, e.detail) }

// decodeJSON reads one JSON object of at most limit bytes into v. The
// KumoMTA-compatible injection is not strict: it ignores fields it does
// not know.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, flags int, v any) *apiError {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit), nil}
	}
	if err != nil {
		return &apiError{http.StatusBadRequest, "cannot read the request body", err.Error()}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if flags&optional != 0 {
			return nil
		}
		return &apiError{http.StatusBadRequest, "request body is empty: a JSON object is required", nil}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if flags&strict != 0 {
		dec.DisallowUnknownFields()
	}
	err = dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	detail := strings.TrimPrefix(err.Error(), "json: ")
	switch {
	case errors.As(err, &syn):
		detail = fmt.Sprintf("%v (at byte %d)", syn, syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the request"
		}
		detail = fmt.Sprintf("%s: expected %s, got %s", field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		detail = "the JSON object is truncated"
	}
	return &apiError{http.StatusBadRequest, "malformed JSON", detail}
}

// clientIP is the IP of the HTTP client (the admin API sits on loopback or
// behind a token; no proxy headers are trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

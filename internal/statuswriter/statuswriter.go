// Package statuswriter wraps an http.ResponseWriter so that an access log can
// say which status code a handler sent.
package statuswriter

import "net/http"

// Writer is an http.ResponseWriter that remembers the first status code sent
// through it.
type Writer struct {
	http.ResponseWriter
	code int
}

// New wraps w.
func New(w http.ResponseWriter) *Writer { return &Writer{ResponseWriter: w} }

// WriteHeader sends code and remembers it if it is the first.
func (s *Writer) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write writes b; a first write without WriteHeader sends 200, as net/http does.
func (s *Writer) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped writer, so http.ResponseController can reach it.
func (s *Writer) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Written reports whether a status code has been sent yet.
func (s *Writer) Written() bool { return s.code != 0 }

// Status is the status code sent, or 200 if the handler sent nothing: net/http
// answers 200 for a handler that returns without writing.
func (s *Writer) Status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

package statuswriter

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriterRemembersTheFirstStatus(t *testing.T) {
	tests := []struct {
		name        string
		handler     func(w http.ResponseWriter)
		wantWritten bool
		wantStatus  int
	}{
		{"nothing written", func(w http.ResponseWriter) {}, false, http.StatusOK},
		{"body only", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, true, http.StatusOK},
		{"explicit status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, true, http.StatusTeapot},
		{"status then body", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("x"))
		}, true, http.StatusNotFound},
		{"second status ignored", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
			w.WriteHeader(http.StatusOK)
		}, true, http.StatusBadGateway},
		{"body then status ignored", func(w http.ResponseWriter) {
			_, _ = w.Write([]byte("x"))
			w.WriteHeader(http.StatusInternalServerError)
		}, true, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sw := New(rec)
			tc.handler(sw)
			if sw.Written() != tc.wantWritten || sw.Status() != tc.wantStatus {
				t.Errorf("Written() = %v, Status() = %d; want %v, %d", sw.Written(), sw.Status(), tc.wantWritten, tc.wantStatus)
			}
			if rec.Code != tc.wantStatus {
				t.Errorf("the wrapped writer got %d, want %d", rec.Code, tc.wantStatus)
			}
			if sw.Unwrap() != rec {
				t.Error("Unwrap does not return the wrapped writer")
			}
		})
	}
}

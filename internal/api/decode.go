package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 64 << 10

// decodeJSON reads r's body into dst strictly: application/json only, at
// most MaxBodyBytes, no unknown fields, one JSON value and nothing after it.
// Problems never quote the body, so a PIN sent in the wrong place does not
// come back in an error.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) *Problem {
	if p := checkJSONType(r); p != nil {
		return p
	}
	if r.ContentLength > MaxBodyBytes {
		return tooLarge()
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge()
		}
		p := newProblem(codeInvalid, "the body must hold exactly one JSON object; remove what follows it")
		return &p
	}
	return nil
}

// decodeEmpty accepts an action body that carries nothing: no body at all,
// or a JSON object without fields.
func decodeEmpty(w http.ResponseWriter, r *http.Request) *Problem {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge()
		}
		p := newProblem(codeInvalid, "the request body could not be read")
		return &p
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return decodeJSON(w, r, &struct{}{})
}

func checkJSONType(r *http.Request) *Problem {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		p := newProblem(codeUnsupportedMedia, "send the body as JSON with the header Content-Type: application/json")
		return &p
	}
	return nil
}

func tooLarge() *Problem {
	p := newProblem(codeBodyTooLarge, fmt.Sprintf("the body is larger than %d KiB", MaxBodyBytes>>10))
	return &p
}

// decodeProblem describes a decoding error by position and field name only.
func decodeProblem(err error) *Problem {
	var (
		tooBig    *http.MaxBytesError
		syntax    *json.SyntaxError
		typ       *json.UnmarshalTypeError
		timeParse *time.ParseError
	)
	detail := "the body is not valid JSON for this endpoint"
	switch {
	case errors.As(err, &tooBig):
		return tooLarge()
	case errors.Is(err, io.EOF):
		detail = "the body is empty; send a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		detail = "the JSON body ends too early"
	case errors.As(err, &syntax):
		detail = fmt.Sprintf("the body is not valid JSON (error at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			detail = fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		} else {
			detail = "the body must be a JSON object"
		}
	case errors.As(err, &timeParse):
		detail = "a time is not in RFC 3339 format (example: 2025-05-01T12:00:00Z)"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The field name is the caller's own key, never a value.
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		detail = fmt.Sprintf("unknown field %s; this endpoint does not accept it", name)
	}
	p := newProblem(codeInvalid, detail)
	return &p
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	}
	return "of another type"
}

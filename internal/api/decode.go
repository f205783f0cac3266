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
	"unicode/utf8"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 64 << 10

// decodeJSON reads r's body into dst strictly: application/json only, at
// most MaxBodyBytes, valid UTF-8 (never replaced), each key once (see
// checkKeys), no unknown fields, one JSON value and nothing after it.
// Problems never quote the body, so a PIN sent in the wrong place does not
// come back in an error.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) *Problem {
	if p := checkJSONType(r); p != nil {
		return p
	}
	if r.ContentLength > MaxBodyBytes {
		return tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge()
		}
		p := newProblem(codeInvalid, "the request body could not be read")
		return &p
	}
	if p := checkKeys(body); p != nil {
		return p
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		p := newProblem(codeInvalid, "the body must hold exactly one JSON object; remove what follows it")
		return &p
	}
	return nil
}

// maxKeyLen bounds a JSON key; no field name comes near it, and problems
// that name a key stay short.
const maxKeyLen = 64

// jsonFrame is one open object or array during checkKeys' scan.
type jsonFrame struct {
	object    bool
	expectKey bool
	path      string            // where this value is, e.g. "contacts[2]"
	keys      map[string]string // folded key -> key as sent
	key       string            // the key whose value comes next (objects)
	index     int               // the next element's index (arrays)
}

// child names the value that comes next inside f.
func (f *jsonFrame) child() string {
	if f.object {
		if f.path == "" {
			return f.key
		}
		return f.path + "." + f.key
	}
	return fmt.Sprintf("%s[%d]", f.path, f.index)
}

// checkKeys scans body's first JSON value token by token and refuses, naming
// the place: invalid UTF-8 (encoding/json would silently replace it), a key
// that is not printable ASCII or is longer than maxKeyLen, and a key that
// appears twice in one object. Keys are compared as encoding/json matches
// them to fields, without regard to case, so "reason" and "Reason" are one
// key twice. Syntax errors are left to the decoder, which words them.
func checkKeys(body []byte) *Problem {
	badAt := -1
	if !utf8.Valid(body) {
		for i := 0; i < len(body); {
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				badAt = i
				break
			}
			i += size
		}
	}
	invalidUTF8 := func(where string) *Problem {
		if where != "" {
			where += ": "
		}
		p := newProblem(codeInvalid, fmt.Sprintf("%sis not valid UTF-8 (byte 0x%02X at byte %d of the body); send UTF-8 text", where, body[badAt], badAt))
		return &p
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*jsonFrame
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			break
		}
		end := dec.InputOffset()
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.object && top.expectKey {
			if badAt >= int(start) && badAt < int(end) {
				return invalidUTF8(top.path)
			}
			if p := checkKey(top, s); p != nil {
				return p
			}
			continue
		}
		// A value (or a closing delimiter): it fills the pending slot of its
		// parent.
		where := ""
		if top != nil {
			where = top.child()
			if top.object {
				top.expectKey = true
			} else {
				top.index++
			}
		}
		if badAt >= int(start) && badAt < int(end) {
			return invalidUTF8(where)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &jsonFrame{object: tok == json.Delim('{'), expectKey: true, path: where, keys: map[string]string{}})
			continue
		case json.Delim('}'), json.Delim(']'):
			// Not a value: what was filled above belongs to the closed frame.
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			break
		}
	}
	if badAt >= 0 {
		return invalidUTF8("")
	}
	return nil
}

// checkKey records key in the object f, refusing a malformed or repeated one.
func checkKey(f *jsonFrame, key string) *Problem {
	in := ""
	if f.path != "" {
		in = " in " + f.path
	}
	for _, r := range key {
		if r < 0x20 || r > 0x7e {
			p := newProblem(codeInvalid, fmt.Sprintf("a key%s holds a character other than printable ASCII (%U); field names are plain ASCII", in, r))
			return &p
		}
	}
	if len(key) > maxKeyLen {
		p := newProblem(codeInvalid, fmt.Sprintf("a key%s is %d characters long; no field name is longer than %d", in, len(key), maxKeyLen))
		return &p
	}
	folded := strings.ToLower(key)
	if prev, dup := f.keys[folded]; dup {
		detail := fmt.Sprintf("key %q appears twice%s; send each field once", key, in)
		if prev != key {
			detail = fmt.Sprintf("keys %q and %q%s name the same field (field names match without regard to case); send it once", prev, key, in)
		}
		p := newProblem(codeInvalid, detail)
		return &p
	}
	f.keys[folded] = key
	f.key = key
	f.expectKey = false
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

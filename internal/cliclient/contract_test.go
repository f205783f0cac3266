package cliclient

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/api"
)

// TestTypesMatchTheServer keeps the CLI's view of the server's answers in
// step with the types the server encodes: every field the client reads must
// be one the server writes, under the same name and of the same shape, or
// the CLI would silently show zero values. (Bodies the CLI sends need no
// such test: the server refuses unknown fields, and the e2e CLI test sends
// each of them.)
func TestTypesMatchTheServer(t *testing.T) {
	pairs := []struct {
		client, server any
	}{
		{Request{}, api.Request{}},
		{Decision{}, api.Decision{}},
		{Cancellation{}, api.Cancellation{}},
		{Agent{}, api.Agent{}},
		{IssuedToken{}, api.AgentWithToken{}},
		{CustomerView{}, api.CustomerView{}},
		{Unlocked{}, api.UnlockResult{}},
		{Reposted{}, api.RepostResult{}},
	}
	for _, p := range pairs {
		ct, st := reflect.TypeOf(p.client), reflect.TypeOf(p.server)
		t.Run(ct.Name(), func(t *testing.T) {
			server := jsonFields(st)
			for name, cf := range jsonFields(ct) {
				sf, ok := server[name]
				if !ok {
					t.Errorf("client field %s.%s reads %q, which the server's %s never writes", ct.Name(), cf.Name, name, st.Name())
					continue
				}
				if cs, ss := shape(cf.Type), shape(sf.Type); cs != ss {
					t.Errorf("%q: client %s.%s is %s, server %s.%s is %s", name, ct.Name(), cf.Name, cs, st.Name(), sf.Name, ss)
				}
			}
		})
	}
}

// jsonFields maps JSON names to fields, leaving out `json:"-"`.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// shape is what JSON makes of a type: pointers and named types fold into
// their kind, structs and slices keep their element's shape.
func shape(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(time.Time{}):
		return "time"
	case t.Kind() == reflect.Slice:
		return "[]" + shape(t.Elem())
	case t.Kind() == reflect.Struct:
		return "object"
	}
	return t.Kind().String()
}

package workflows

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// errorTypesOf reads the ErrType* string constants declared in the non-test
// files of dir: the error classes the activities can give a failure.
func errorTypesOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range spec.Names {
				if !strings.HasPrefix(name.Name, "ErrType") || i >= len(spec.Values) {
					continue
				}
				lit, ok := spec.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: %s is not a string literal", f, name.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				types[name.Name] = v
			}
			return true
		})
	}
	if len(types) == 0 {
		t.Fatalf("no ErrType constants found in %s", dir)
	}
	return types
}

// TestFailureTextSaysWhy: for every error class the activities declare,
// failureText puts the class into words: never the bare type name, never
// the fallback, and nothing of the error's message or its causes (which
// may carry URLs or a caller's text).
func TestFailureTextSaysWhy(t *testing.T) {
	const leak = "https://panel.example/v1/customers/c-1?token=s3cret"
	classes := errorTypesOf(t, "../activities")
	names := make([]string, 0, len(classes))
	for name := range classes {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	for _, name := range names {
		class := classes[name]
		seen[class] = true
		t.Run(name, func(t *testing.T) {
			app := temporal.NewNonRetryableApplicationError("refused at "+leak, class, errors.New("cause "+leak))
			for _, err := range []error{app, fmt.Errorf("activity Execute: %w", app)} {
				got := failureText(err)
				switch {
				case got == "the action failed: "+class || strings.Contains(got, class):
					t.Fatalf("failureText(%s) = %q: the bare type name, not words", class, got)
				case !strings.HasPrefix(got, "the action failed: ") || got == "the action failed: ":
					t.Fatalf("failureText(%s) = %q, want \"the action failed: \" and words", class, got)
				case strings.Contains(got, "s3cret") || strings.Contains(got, "panel.example"):
					t.Fatalf("failureText(%s) = %q leaks the error's text", class, got)
				}
			}
		})
	}
	// Every class with words is one the activities declare.
	for class := range failureWords {
		if !seen[class] {
			t.Errorf("failureWords has %q, which no activities.ErrType constant names", class)
		}
	}
	// Errors of no class of ours read as the fallback, with nothing of
	// their own text either.
	unclassifiedErrs := []struct {
		name string
		err  error
	}{
		{"plain error", errors.New("dial " + leak)},
		{"Go type name as type", temporal.NewApplicationError("panel: "+leak, "wrapError")},
		{"timeout", temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, errors.New(leak))},
		{"canceled", temporal.NewCanceledError(leak)},
	}
	for _, tc := range unclassifiedErrs {
		t.Run(tc.name, func(t *testing.T) {
			if got := failureText(tc.err); got != "the action failed after retries" {
				t.Fatalf("failureText = %q, want the fallback", got)
			}
		})
	}
}

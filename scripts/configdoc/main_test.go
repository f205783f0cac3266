package main

import (
	"os"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/config"
)

// TestReadmeTableIsCurrent fails when README.md's configuration table differs
// from config.Vars: run `go run ./scripts/configdoc -w README.md` to fix it.
func TestReadmeTableIsCurrent(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	want, err := replaceBlock(doc)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if string(want) != string(doc) {
		t.Fatalf("README.md's configuration table is out of date with internal/config.Vars; run `go run ./scripts/configdoc -w README.md`")
	}
}

func TestTableHasEveryVar(t *testing.T) {
	got := table()
	for _, v := range config.Vars {
		if !strings.Contains(got, "| `"+v.Name+"` | "+cell(v.Default)+" | "+cell(v.Help)+" |\n") {
			t.Errorf("table lacks the row for %s", v.Name)
		}
	}
	if rows := strings.Count(got, "\n"); rows != len(config.Vars)+2 {
		t.Errorf("table has %d lines, want %d (header, rule, one per variable)", rows, len(config.Vars)+2)
	}
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Vigil Security <security@vigil.localhost>", "Vigil Security &lt;security@vigil.localhost&gt;"},
		{"a|b", `a\|b`},
		{"id:base64(32 bytes),...", "id:base64(32 bytes),..."},
	}
	for _, tc := range tests {
		if got := cell(tc.in); got != tc.want {
			t.Errorf("cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReplaceBlock(t *testing.T) {
	doc := "intro\n" + beginMarker + "\nstale\n" + endMarker + "\noutro\n"
	got, err := replaceBlock([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n" + beginMarker + "\n" + table() + endMarker + "\noutro\n"
	if string(got) != want {
		t.Errorf("replaceBlock:\n%s\nwant:\n%s", got, want)
	}
	if _, err := replaceBlock([]byte("no markers")); err == nil {
		t.Error("replaceBlock without markers: want an error")
	}
}

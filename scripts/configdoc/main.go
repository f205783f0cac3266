// Command configdoc prints the README's table of environment variables from
// config.Vars, or with -w rewrites that table in README.md in place, so the
// README never drifts from what the code reads.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"html"
	"os"
	"strings"

	"github.com/vigil-oss/vigil/internal/config"
)

// The README's table sits between these two lines.
const (
	beginMarker = "<!-- config table: generated from internal/config.Vars by `go run ./scripts/configdoc -w README.md`; do not edit by hand -->"
	endMarker   = "<!-- end config table -->"
)

func main() {
	write := flag.String("w", "", "rewrite the table in this markdown `file` instead of printing it")
	flag.Parse()
	if *write == "" {
		fmt.Print(table())
		return
	}
	if err := rewrite(*write); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}

// table renders config.Vars as a markdown table.
func table() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Meaning |\n| --- | --- | --- |\n")
	for _, v := range config.Vars {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, cell(v.Default), cell(v.Help))
	}
	return b.String()
}

// cell makes s safe inside a table cell while rendering as the same text.
func cell(s string) string {
	return strings.ReplaceAll(html.EscapeString(s), "|", `\|`)
}

// replaceBlock returns doc with the text between the markers replaced by the
// current table.
func replaceBlock(doc []byte) ([]byte, error) {
	begin := bytes.Index(doc, []byte(beginMarker))
	end := bytes.Index(doc, []byte(endMarker))
	if begin < 0 || end < begin {
		return nil, errors.New("markers not found: the file needs the begin and end marker lines around the table")
	}
	var out bytes.Buffer
	out.Write(doc[:begin+len(beginMarker)])
	out.WriteString("\n")
	out.WriteString(table())
	out.Write(doc[end:])
	return out.Bytes(), nil
}

func rewrite(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceBlock(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

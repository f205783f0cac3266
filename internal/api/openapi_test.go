package api

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestOpenAPICoversEverything keeps web/openapi.yaml in step with the code:
// every route is documented with its method and every documented API
// operation is a route, and every problem code is in the ProblemCode enum.
func TestOpenAPICoversEverything(t *testing.T) {
	raw, err := os.ReadFile("../../web/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	paths := map[string]string{} // path -> its block of the document
	pathKey := regexp.MustCompile(`(?m)^  (/\S*):\n`)
	locs := pathKey.FindAllStringSubmatchIndex(doc, -1)
	for i, l := range locs {
		end := strings.Index(doc, "\ncomponents:")
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		paths[doc[l[2]:l[3]]] = doc[l[0]:end]
	}
	a := &API{}
	routes := map[string]bool{} // "METHOD /path"
	for _, rt := range append(append(a.agentRoutes(), a.adminRoutes()...), a.publicRoutes()...) {
		routes[rt.pattern] = true
		method, path, _ := strings.Cut(rt.pattern, " ")
		block, ok := paths[path]
		if !ok {
			t.Errorf("openapi.yaml does not document %s", path)
			continue
		}
		if !strings.Contains(block, "\n    "+strings.ToLower(method)+":\n") {
			t.Errorf("openapi.yaml documents %s without %s", path, method)
		}
	}
	// The other way round: the spec documents no API operation that the
	// code does not serve (such as a removed endpoint).
	opKey := regexp.MustCompile(`(?m)^    (get|put|post|patch|delete):\n`)
	checked := 0
	for path, block := range paths {
		if !under(path, "/api") && !under(path, "/admin") {
			continue
		}
		for _, m := range opKey.FindAllStringSubmatch(block, -1) {
			checked++
			if op := strings.ToUpper(m[1]) + " " + path; !routes[op] {
				t.Errorf("openapi.yaml documents %s, which is not a route", op)
			}
		}
	}
	if checked != len(routes) {
		t.Errorf("openapi.yaml documents %d API operations, the code serves %d", checked, len(routes))
	}
	enum := regexp.MustCompile(`(?m)^      enum: \[(unauthenticated[^\]]*)\]`).FindStringSubmatch(doc)
	if enum == nil {
		t.Fatal("ProblemCode enum not found")
	}
	documented := map[string]bool{}
	for _, c := range strings.Split(enum[1], ",") {
		documented[strings.TrimSpace(c)] = true
	}
	for code, k := range problemKinds {
		if !documented[code] {
			t.Errorf("problem code %s is not in the ProblemCode enum", code)
		}
		if !strings.Contains(doc, "| "+code+" | "+strconv.Itoa(k.status)+" |") {
			t.Errorf("problem code %s is not in the table with status %d", code, k.status)
		}
	}
	if len(documented) != len(problemKinds) {
		t.Errorf("enum has %d codes, the code %d", len(documented), len(problemKinds))
	}
}

package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The Dockerfile is read here, not with BuildKit's parser
// (github.com/moby/buildkit/frontend/dockerfile/parser): that module needs
// go 1.26.8 and newer gRPC, genproto and x/time than Temporal's SDK is built
// with here, and would move them for the whole module just for a test. The
// reading below covers what this Dockerfile uses (line continuations,
// comments, FROM … AS, RUN in shell form, COPY --from, ENV, USER, CMD and
// ENTRYPOINT) and fails on what it does not understand rather than guess.

// image is what the Dockerfile's final stage holds and runs.
type image struct {
	binaries   []string    // programs the final stage has on PATH, from `go build`
	goPatterns []string    // package patterns of `go build`
	goPackages []goPackage // what they name, per `go list`
	apt        []string    // packages the final stage installs
	entrypoint []string
	cmd        []string
	user       string
}

type goPackage struct{ Name, ImportPath string }

// has says whether a program is in the image.
func (im image) has(prog string) bool {
	return slices.Contains(im.binaries, prog) || slices.Contains(im.apt, prog) || baseTools[prog]
}

type instruction struct {
	line int
	cmd  string // upper-case
	args string
}

type stage struct {
	name   string
	instrs []instruction
}

// defaultPath is the PATH of Debian's images.
var defaultPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// goBuildValueFlags are the `go build` flags that take a value.
var goBuildValueFlags = map[string]bool{
	"-o": true, "-tags": true, "-ldflags": true, "-gcflags": true, "-asmflags": true, "-mod": true,
	"-p": true, "-pkgdir": true, "-buildmode": true, "-compiler": true, "-installsuffix": true,
	"-modfile": true, "-overlay": true, "-pgo": true, "-toolexec": true, "-C": true, "-buildvcs": true,
}

// goBuildBoolFlags are the `go build` flags that take none.
var goBuildBoolFlags = map[string]bool{
	"-trimpath": true, "-race": true, "-msan": true, "-asan": true, "-cover": true, "-a": true,
	"-n": true, "-v": true, "-x": true, "-work": true, "-linkshared": true,
}

func readImage(t *testing.T, root string) image {
	t.Helper()
	stages := readDockerfile(t, filepath.Join(root, dockerfile))
	var im image
	outDirs := map[string]string{} // stage name or index -> `go build -o` directory
	for i, st := range stages {
		for _, in := range st.instrs {
			if in.cmd != "RUN" {
				continue
			}
			for _, c := range commands(t, in) {
				if len(c) < 2 || c[0] != "go" || c[1] != "build" {
					continue
				}
				out, patterns := parseGoBuild(t, in, c[2:])
				if !strings.HasSuffix(out, "/") {
					t.Fatalf("%s:%d: `go build -o %s`: write the output as a directory ending in /, so every binary keeps its package's name", dockerfile, in.line, out)
				}
				outDirs[st.name] = out
				outDirs[strconv.Itoa(i)] = out
				im.goPatterns = append(im.goPatterns, patterns...)
			}
		}
	}
	if len(im.goPatterns) == 0 {
		return im
	}
	im.goPackages = goList(t, root, im.goPatterns)

	final := stages[len(stages)-1]
	pathDirs := defaultPath
	for _, in := range final.instrs {
		switch in.cmd {
		case "ENV":
			if strings.HasPrefix(in.args, "PATH") {
				t.Fatalf("%s:%d: the final stage sets PATH; teach readImage in deploy/dockerfile_test.go to follow it", dockerfile, in.line)
			}
		case "COPY":
			words := shellWordsOf(t, in)
			from := ""
			var rest []string
			for _, w := range words {
				if v, ok := strings.CutPrefix(w, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(w, "--") {
					rest = append(rest, w)
				}
			}
			out, ok := outDirs[from]
			if !ok || len(rest) != 2 {
				continue
			}
			src, dest := rest[0], rest[1]
			if !slices.Contains(pathDirs, strings.TrimSuffix(dest, "/")) {
				t.Errorf("%s:%d: the binaries are copied to %s, which is not on the image's PATH %v: compose's command: [worker] would not find them", dockerfile, in.line, dest, pathDirs)
				continue
			}
			for _, p := range im.goPackages {
				bin := path.Base(p.ImportPath)
				if strings.TrimSuffix(src, "/") == strings.TrimSuffix(out, "/") || src == out+bin {
					im.binaries = append(im.binaries, bin)
				}
			}
		case "RUN":
			for _, c := range commands(t, in) {
				if len(c) >= 2 && c[0] == "apt-get" && c[1] == "install" {
					for _, w := range c[2:] {
						if !strings.HasPrefix(w, "-") {
							im.apt = append(im.apt, w)
						}
					}
				}
			}
		case "USER":
			im.user = strings.TrimSpace(in.args)
		case "CMD":
			im.cmd = execForm(t, in)
		case "ENTRYPOINT":
			im.entrypoint = execForm(t, in)
		}
	}
	slices.Sort(im.binaries)
	im.binaries = slices.Compact(im.binaries)
	return im
}

// readDockerfile splits a Dockerfile into stages of instructions, joining
// continued lines and dropping comments.
func readDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			name := ""
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			}
			stages = append(stages, stage{name: name})
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", dockerfile, in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment, also inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	if len(stages) == 0 {
		t.Fatalf("%s has no FROM", dockerfile)
	}
	return stages
}

// commands splits a RUN instruction into its shell commands.
func commands(t *testing.T, in instruction) [][]string {
	t.Helper()
	if strings.HasPrefix(in.args, "[") {
		return [][]string{execForm(t, in)}
	}
	var out [][]string
	var cur []string
	for _, w := range shellWordsOf(t, in) {
		if w == "&&" {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, w)
	}
	return append(out, cur)
}

func shellWordsOf(t *testing.T, in instruction) []string {
	t.Helper()
	if strings.ContainsAny(in.args, "$`") {
		t.Fatalf("%s:%d: %s uses shell expansion, which deploy/dockerfile_test.go does not follow: %s", dockerfile, in.line, in.cmd, in.args)
	}
	return shellWords(t, in.args)
}

func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(in.args), &out); err != nil {
		t.Fatalf("%s:%d: %s %s: write it in exec form, [\"binary\", \"arg\"], so compose's command: replaces its arguments and signals reach the binary", dockerfile, in.line, in.cmd, in.args)
	}
	return out
}

// parseGoBuild returns the -o value and the package patterns of `go build`.
func parseGoBuild(t *testing.T, in instruction, args []string) (out string, patterns []string) {
	t.Helper()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			patterns = append(patterns, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		name = "-" + strings.TrimLeft(name, "-")
		switch {
		case goBuildValueFlags[name]:
			if !hasValue {
				i++
				if i == len(args) {
					t.Fatalf("%s:%d: go build %s has no value", dockerfile, in.line, name)
				}
				value = args[i]
			}
			if name == "-o" {
				out = value
			}
		case goBuildBoolFlags[name]:
		default:
			t.Fatalf("%s:%d: go build flag %s is unknown to deploy/dockerfile_test.go: add it to goBuildValueFlags or goBuildBoolFlags", dockerfile, in.line, a)
		}
	}
	if out == "" {
		t.Fatalf("%s:%d: go build without -o: name the output directory, e.g. -o /out/", dockerfile, in.line)
	}
	if len(patterns) == 0 {
		t.Fatalf("%s:%d: go build names no packages", dockerfile, in.line)
	}
	return out, patterns
}

// goList resolves package patterns as `go build` in the image would.
func goList(t *testing.T, root string, patterns []string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-json=Name,ImportPath,Error"}, patterns...)...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: go list %v: %v", dockerfile, patterns, err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			goPackage
			Error *struct{ Err string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("%s: `go build` names %s, which does not build here: %s", dockerfile, p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p.goPackage)
	}
	return pkgs
}

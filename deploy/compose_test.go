package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/mattn/go-shellwords"

	"github.com/vigil-oss/vigil/internal/config"
)

// The files under test, relative to the repository's root.
const (
	composeFile  = "docker-compose.yml"
	dockerfile   = "Dockerfile"
	composeEnv   = "scripts/compose-env"
	projectEnv   = ".env"      // compose's own variables: interpolation only
	settingsFile = "vigil.env" // Vigil's settings, passed to its containers
	modulePath   = "github.com/vigil-oss/vigil"
)

// processes maps each compose service that runs a Vigil process configured
// by internal/config to that process.
var processes = map[string]string{"worker": "worker", "web": "web"}

// publicPorts lists the published ports that may bind an address other than
// 127.0.0.1, as "service:target". None: the web front is the one service meant
// to be reached from outside (customers' cancel pages, Slack's interactions),
// but it speaks plain HTTP, so it binds loopback and the TLS proxy in front of
// it (README) is what faces the network. The metrics ports stay loopback for
// good: /metrics has no authentication and tells anyone who can read it how
// busy Vigil is and what fails; a Prometheus on the host scrapes them there,
// one on the compose network reaches worker:9464 and web:9465 directly.
var publicPorts = map[string]bool{}

// baseTools are the programs of the runtime base image (debian:bookworm-slim)
// that healthchecks may call besides the built binaries and the packages the
// Dockerfile installs.
var baseTools = map[string]bool{"sh": true, "bash": true}

// workingDirs are the working directories of third-party images, for settings
// that name a file relative to it (temporalio/auto-setup reads
// DYNAMIC_CONFIG_FILE_PATH relative to /etc/temporal).
var workingDirs = map[string]map[string]string{
	"temporal": {"DYNAMIC_CONFIG_FILE_PATH": "/etc/temporal"},
}

// stack is the compose project as `docker compose` would see it after
// scripts/compose-env ran, plus the image the Dockerfile builds.
type stack struct {
	root     string // the repository, absolute
	project  *types.Project
	settings map[string]string // vigil.env as compose-env wrote it
	image    image
}

func TestComposeStack(t *testing.T) {
	s := loadStack(t)

	t.Run("vigil services get every required setting", func(t *testing.T) {
		for svc, process := range processes {
			env := s.env(t, svc)
			required := requiredBy(t, process)
			for _, name := range required {
				v, ok := env[name]
				switch {
				case !ok:
					t.Errorf("service %s does not get %s, which internal/config marks %q: set it in %s's x-vigil environment or have %s write it into %s",
						svc, name, defaultOf(name), composeFile, composeEnv, settingsFile)
				case v == "" && !blankForOperator(s.settings, name):
					t.Errorf("service %s gets %s empty, and %s does not leave it for the operator to fill in: give it a value in %s or %s",
						svc, name, composeEnv, composeFile, composeEnv)
				}
			}
			// The operator fills in what compose-env leaves blank; then the
			// process's own checks must pass.
			filled := maps.Clone(env)
			for k, v := range filled {
				if v == "" && blankForOperator(s.settings, k) {
					filled[k] = "filled-in-by-operator"
				}
			}
			cfg, err := config.Load(func(k string) string { return filled[k] })
			if err != nil {
				t.Errorf("service %s: internal/config refuses the environment %s gives it: %v", svc, composeFile, err)
				continue
			}
			if err := cfg.RequireSecrets(); err != nil {
				t.Errorf("service %s: secrets as %s writes them are refused: %v (fix %s)", svc, composeEnv, err, composeEnv)
			}
			if err := cfg.RequireSlack(process == "web"); err != nil {
				t.Errorf("service %s: Slack settings are refused: %v (fix %s or %s)", svc, err, composeFile, composeEnv)
			}
			if process == "web" {
				if err := cfg.RequirePanelRead(); err != nil {
					t.Errorf("service %s: panel read settings are refused: %v (fix %s)", svc, err, composeEnv)
				}
			}
		}
	})

	t.Run("vigil services get only settings internal/config knows", func(t *testing.T) {
		known := map[string]bool{}
		for _, v := range config.Vars {
			known[v.Name] = true
		}
		for svc := range processes {
			for name := range s.env(t, svc) {
				if known[name] {
					continue
				}
				where := fmt.Sprintf("%s sets it for service %s", composeFile, svc)
				if _, ok := s.settings[name]; ok {
					where = fmt.Sprintf("%s writes it into %s, which service %s reads", composeEnv, settingsFile, svc)
				}
				if strings.HasPrefix(name, "VIGIL_") {
					t.Errorf("%s is not a setting internal/config knows (a typo?): %s", name, where)
				} else {
					t.Errorf("%s is not a Vigil setting and should not reach Vigil's containers: %s", name, where)
				}
			}
		}
	})

	// The Temporal UI's write actions (terminate, reset, signal, start, ...)
	// bypass Vigil's gates: every UI service runs with them off.
	t.Run("the Temporal UI is read-only", func(t *testing.T) {
		found := false
		for _, name := range sortedServices(s.project) {
			svc := s.project.Services[name]
			if !strings.HasPrefix(svc.Image, "temporalio/ui") {
				continue
			}
			found = true
			if v := svc.Environment["TEMPORAL_DISABLE_WRITE_ACTIONS"]; v == nil || *v != "true" {
				t.Errorf("%s: service %s (%s) does not set TEMPORAL_DISABLE_WRITE_ACTIONS=true: its write actions bypass Vigil", composeFile, name, svc.Image)
			}
		}
		if !found {
			t.Errorf("%s: no temporalio/ui service: this check no longer finds the UI", composeFile)
		}
	})

	t.Run("published ports bind loopback and do not clash", func(t *testing.T) {
		seen := map[string]string{}
		for _, name := range sortedServices(s.project) {
			for _, p := range s.project.Services[name].Ports {
				id := fmt.Sprintf("%s:%d", name, p.Target)
				if p.Published == "" {
					t.Errorf("%s: service %s publishes container port %d on a random host port: give it a fixed 127.0.0.1:PORT:%d", composeFile, name, p.Target, p.Target)
				}
				if p.HostIP != "127.0.0.1" && !publicPorts[id] {
					t.Errorf("%s: service %s publishes port %d on %q, which is every interface when empty: write \"127.0.0.1:%s:%d\" (or, if it must be public, add %s to publicPorts in deploy/compose_test.go and say why)",
						composeFile, name, p.Target, p.HostIP, p.Published, p.Target, id)
				}
				key := p.HostIP + ":" + p.Published + "/" + p.Protocol
				if other, dup := seen[key]; dup {
					t.Errorf("%s: services %s and %s both publish host port %s", composeFile, other, name, key)
				}
				seen[key] = name
			}
		}
	})

	t.Run("vigil services listen where they are published and reached", func(t *testing.T) {
		for _, name := range s.built() {
			svc := s.project.Services[name]
			listen := s.listenAddrs(t, name)
			for _, p := range svc.Ports {
				addr, ok := listen[fmt.Sprint(p.Target)]
				if !ok {
					t.Errorf("%s: service %s publishes port %d but listens on %v: fix the port or the listen address setting", composeFile, name, p.Target, values(listen))
					continue
				}
				if isLoopback(addr) {
					t.Errorf("%s: service %s listens on %s inside its container, so published port %d reaches nothing: listen on 0.0.0.0:%d", composeFile, name, addr, p.Target, p.Target)
				}
			}
		}
		// Every address a Vigil process dials that is another Vigil service
		// must be where that service listens, on a non-loopback address.
		for svc := range processes {
			for setting, target := range s.dials(t, svc) {
				host, port, _ := net.SplitHostPort(target)
				if _, ok := s.project.Services[host]; !ok || !slices.Contains(s.built(), host) {
					continue
				}
				addr, ok := s.listenAddrs(t, host)[port]
				switch {
				case !ok:
					t.Errorf("%s: service %s dials %s (%s) but %s listens on %v", composeFile, svc, target, setting, host, values(s.listenAddrs(t, host)))
				case isLoopback(addr):
					t.Errorf("%s: service %s dials %s (%s) but %s listens on loopback %s inside its container: listen on 0.0.0.0:%s", composeFile, svc, target, setting, host, addr, port)
				}
			}
		}
	})

	t.Run("dependencies exist and wait for what they need", func(t *testing.T) {
		for _, name := range sortedServices(s.project) {
			svc := s.project.Services[name]
			for dep, d := range svc.DependsOn {
				target, ok := s.project.Services[dep]
				if !ok {
					t.Errorf("%s: service %s depends on %s, which is not a service", composeFile, name, dep)
					continue
				}
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 || target.HealthCheck.Test[0] == "NONE" {
						t.Errorf("%s: service %s waits for %s to be healthy, but %s has no healthcheck: add one to %s (or wait for service_started)", composeFile, name, dep, dep, dep)
					}
				case types.ServiceConditionCompletedSuccessfully:
					if target.Restart != "" && target.Restart != types.RestartPolicyNo {
						t.Errorf("%s: service %s waits for %s to complete, but %s has restart: %s and is restarted instead of completing: give it restart: \"no\"", composeFile, name, dep, dep, target.Restart)
					}
				case types.ServiceConditionStarted:
				default:
					t.Errorf("%s: service %s depends on %s with unknown condition %q", composeFile, name, dep, d.Condition)
				}
			}
		}
		// What a Vigil process dials must be a service it waits for,
		// directly or through another service.
		for svc := range processes {
			needs := dependencyClosure(s.project, svc)
			for setting, target := range s.dials(t, svc) {
				host, _, _ := net.SplitHostPort(target)
				if _, ok := s.project.Services[host]; !ok {
					t.Errorf("%s: service %s reaches %s at %s, but there is no service %q", composeFile, svc, setting, target, host)
					continue
				}
				if !needs[host] {
					t.Errorf("%s: service %s reaches %s at %s but does not depend on %s: add it to %s's depends_on", composeFile, svc, setting, target, host, svc)
				}
			}
		}
	})

	t.Run("healthchecks are complete and call what the image has", func(t *testing.T) {
		for _, name := range sortedServices(s.project) {
			hc := s.project.Services[name].HealthCheck
			if hc == nil || hc.Disable {
				continue
			}
			if len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
				t.Errorf("%s: service %s's healthcheck test %q is neither [CMD, …] nor [CMD-SHELL, …]", composeFile, name, hc.Test)
				continue
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("%s: service %s's healthcheck lacks interval, timeout or retries; the defaults (30s, 30s, 3) make the stack start slowly and give up early", composeFile, name)
			}
			if !slices.Contains(s.built(), name) {
				continue // third-party image: its tools are its own business
			}
			args := []string(hc.Test[1:])
			if hc.Test[0] == "CMD-SHELL" {
				args = shellWords(t, hc.Test[1])
			}
			if !s.image.has(args[0]) {
				t.Errorf("%s: service %s's healthcheck runs %q, which the image from %s does not have (binaries %v, packages %v)", composeFile, name, args[0], dockerfile, s.image.binaries, s.image.apt)
			}
			listen := s.listenAddrs(t, name)
			for _, port := range healthcheckPorts(strings.Join(args, " ")) {
				if _, ok := listen[port]; !ok {
					t.Errorf("%s: service %s's healthcheck probes port %s but the service listens on %v", composeFile, name, port, values(listen))
				}
			}
		}
		// The web front's healthcheck must ask a path it serves (web/main.go).
		if hc := s.project.Services["web"].HealthCheck; hc != nil {
			test := strings.Join(hc.Test, " ")
			if !strings.Contains(test, "/readyz") && !strings.Contains(test, "/healthz") {
				t.Errorf("%s: service web's healthcheck %q asks neither /readyz nor /healthz", composeFile, hc.Test)
			}
		}
	})

	t.Run("mounted files exist and are read-only", func(t *testing.T) {
		declared := map[string]bool{}
		for v := range s.project.Volumes {
			declared[v] = false
		}
		for _, name := range sortedServices(s.project) {
			svc := s.project.Services[name]
			for _, v := range svc.Volumes {
				switch v.Type {
				case types.VolumeTypeBind:
					rel, err := filepath.Rel(s.root, v.Source)
					if err != nil || strings.HasPrefix(rel, "..") {
						t.Errorf("%s: service %s mounts %s from outside the repository", composeFile, name, v.Source)
						continue
					}
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("%s: service %s mounts ./%s, which does not exist", composeFile, name, rel)
					}
					if !v.ReadOnly {
						t.Errorf("%s: service %s mounts ./%s writable: add :ro (the containers must not change the repository)", composeFile, name, rel)
					}
				case types.VolumeTypeVolume:
					if _, ok := declared[v.Source]; !ok {
						t.Errorf("%s: service %s uses volume %s, which is not declared under volumes:", composeFile, name, v.Source)
					}
					declared[v.Source] = true
				}
			}
			// Paths the service's command or settings name inside a mount.
			var paths []string
			for _, a := range append(slices.Clone(svc.Entrypoint), svc.Command...) {
				if strings.HasPrefix(a, "/") {
					paths = append(paths, a)
				}
			}
			for k, v := range svc.Environment {
				if v == nil {
					continue
				}
				if dir, ok := workingDirs[name][k]; ok {
					paths = append(paths, path.Join(dir, *v))
				} else if strings.HasPrefix(*v, "/") {
					paths = append(paths, *v)
				}
			}
			for _, p := range paths {
				host, ok := mountedAt(svc, p)
				if !ok {
					// A directory that exists only through file mounts
					// holds nothing else.
					if mounts := filesMountedIn(svc, path.Dir(p)); len(mounts) > 0 {
						t.Errorf("%s: service %s uses %s, but %s holds only what is mounted there: %v", composeFile, name, p, path.Dir(p), mounts)
					}
					continue
				}
				if _, err := os.Stat(host); err != nil {
					rel, _ := filepath.Rel(s.root, host)
					t.Errorf("%s: service %s uses %s, which is ./%s in the repository and does not exist", composeFile, name, p, rel)
				}
			}
		}
		for v, used := range declared {
			if !used {
				t.Errorf("%s: volume %s is declared but no service uses it", composeFile, v)
			}
		}
	})

	t.Run("the image builds what the services run", func(t *testing.T) {
		for _, name := range s.built() {
			svc := s.project.Services[name]
			if svc.Build.Context != s.root || (svc.Build.Dockerfile != "" && svc.Build.Dockerfile != dockerfile) {
				t.Errorf("%s: service %s builds %s with %s; this test reads ./%s at the repository's root", composeFile, name, svc.Build.Context, svc.Build.Dockerfile, dockerfile)
			}
			run := []string(svc.Entrypoint)
			if len(run) == 0 {
				run = append(slices.Clone(s.image.entrypoint), svc.Command...)
			}
			if len(run) == 0 {
				run = s.image.cmd
			}
			if len(run) == 0 {
				t.Errorf("%s: service %s runs nothing: give it command: [worker] or another binary of %v", composeFile, name, s.image.binaries)
				continue
			}
			if !slices.Contains(s.image.binaries, run[0]) {
				t.Errorf("%s: service %s runs %q, which %s does not build (it builds %v)", composeFile, name, run[0], dockerfile, s.image.binaries)
			}
		}
		if len(s.image.cmd) > 0 && !slices.Contains(s.image.binaries, s.image.cmd[0]) {
			t.Errorf("%s: CMD %q is not a binary the image builds (%v)", dockerfile, s.image.cmd, s.image.binaries)
		}
		if s.image.user == "" || s.image.user == "root" || strings.HasPrefix(s.image.user, "0:") || s.image.user == "0" {
			t.Errorf("%s: the final stage runs as %q: end it with USER 65532:65532 (no process of Vigil needs root)", dockerfile, s.image.user)
		}
		// Services that share the image's tag must build it the same way,
		// or whichever builds last wins.
		builds := map[string]string{}
		for _, name := range s.built() {
			svc := s.project.Services[name]
			b, _ := json.Marshal(svc.Build)
			if prev, ok := builds[svc.Image]; ok && prev != string(b) {
				t.Errorf("%s: services tagged %s build it differently", composeFile, svc.Image)
			}
			builds[svc.Image] = string(b)
		}
	})

	t.Run("the image builds only main packages of this repository", func(t *testing.T) {
		if len(s.image.goPatterns) == 0 {
			t.Fatalf("%s: found no `go build` of this repository's packages in the build stage", dockerfile)
		}
		for _, p := range s.image.goPackages {
			if p.Name != "main" {
				t.Errorf("%s: `go build` names %s, which is package %s, not a main package", dockerfile, p.ImportPath, p.Name)
			}
			if p.ImportPath != modulePath && !strings.HasPrefix(p.ImportPath, modulePath+"/") {
				t.Errorf("%s: `go build` names %s, which is not in module %s", dockerfile, p.ImportPath, modulePath)
			}
		}
	})
}

// loadStack runs scripts/compose-env in a temporary directory and loads
// docker-compose.yml with compose-go as `docker compose` would, with the
// files it wrote, then reads the Dockerfile.
func loadStack(t *testing.T) *stack {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := composeEnvDir(t, root)
	if out, err := runComposeEnv(tmp); err != nil {
		t.Fatalf("%s failed: %v\n%s", composeEnv, err, out)
	}
	for _, f := range []string{projectEnv, settingsFile} {
		fi, err := os.Stat(filepath.Join(tmp, f))
		if err != nil {
			t.Fatalf("%s did not write %s: %v", composeEnv, f, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s wrote %s with mode %v; it holds secrets: 0600", composeEnv, f, fi.Mode().Perm())
		}
	}
	// Compose's own reader of env files, not a hand-written one.
	settings, err := dotenv.GetEnvFromFile(map[string]string{}, []string{filepath.Join(tmp, settingsFile)})
	if err != nil {
		t.Fatalf("%s wrote a %s that compose cannot read: %v", composeEnv, settingsFile, err)
	}

	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, composeFile)},
		cli.WithWorkingDirectory(root),
		cli.WithName("vigil"),
		cli.WithEnvFiles(filepath.Join(tmp, projectEnv)),
		cli.WithDotEnv,
		// env_file is resolved below, once it points at the temporary copy.
		cli.WithoutEnvironmentResolution,
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s does not load (schema, interpolation or consistency), with the %s that %s writes: %v", composeFile, projectEnv, composeEnv, err)
	}
	for name, svc := range project.Services {
		for i, f := range svc.EnvFiles {
			if f.Path != filepath.Join(root, settingsFile) {
				t.Fatalf("%s: service %s reads env_file %s; Vigil's settings live in ./%s (written by %s), and compose's own .env must not be passed to containers",
					composeFile, name, f.Path, settingsFile, composeEnv)
			}
			svc.EnvFiles[i].Path = filepath.Join(tmp, settingsFile)
		}
		project.Services[name] = svc
	}
	project, err = project.WithServicesEnvironmentResolved(true)
	if err != nil {
		t.Fatalf("%s: resolving the services' environment with %s: %v", composeFile, settingsFile, err)
	}
	return &stack{root: root, project: project, settings: settings, image: readImage(t, root)}
}

// TestComposeEnv checks that scripts/compose-env never replaces what it
// wrote: a second run would otherwise make new codec keys, and requests
// encrypted with the old ones could no longer be read.
func TestComposeEnv(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	read := func(dir string) map[string]string {
		out := map[string]string{}
		for _, f := range []string{projectEnv, settingsFile} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				out[f] = string(b)
			}
		}
		return out
	}

	t.Run("a second run leaves both files alone", func(t *testing.T) {
		dir := composeEnvDir(t, root)
		if out, err := runComposeEnv(dir); err != nil {
			t.Fatalf("%s: %v\n%s", composeEnv, err, out)
		}
		first := read(dir)
		if len(first) != 2 {
			t.Fatalf("%s wrote %d of %s and %s", composeEnv, len(first), projectEnv, settingsFile)
		}
		if out, err := runComposeEnv(dir); err != nil {
			t.Fatalf("%s, run again: %v\n%s", composeEnv, err, out)
		}
		if again := read(dir); !reflect.DeepEqual(first, again) {
			t.Errorf("%s changed its files when run again: it must never overwrite them", composeEnv)
		}
	})

	t.Run("an .env from before the split is refused, not replaced", func(t *testing.T) {
		dir := composeEnvDir(t, root)
		old := "POSTGRES_PASSWORD=a\nVIGIL_DB_PASSWORD=b\nVIGIL_CODEC_KEYS=k1:old\n"
		if err := os.WriteFile(filepath.Join(dir, projectEnv), []byte(old), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runComposeEnv(dir)
		if err == nil {
			t.Errorf("%s accepted an .env holding VIGIL_CODEC_KEYS and wrote fresh keys into %s; it must stop and say to move them", composeEnv, settingsFile)
		}
		if !strings.Contains(string(out), settingsFile) {
			t.Errorf("%s's refusal does not say to move the settings to %s: %s", composeEnv, settingsFile, out)
		}
		if got := read(dir); got[projectEnv] != old || got[settingsFile] != "" {
			t.Errorf("%s changed files while refusing: %q", composeEnv, got)
		}
	})
}

// composeEnvDir gives scripts/compose-env a copy of itself in a temporary
// tree: it writes next to its own directory, and the developer's own .env
// must be neither read nor written.
func composeEnvDir(t *testing.T, root string) string {
	t.Helper()
	tmp := t.TempDir()
	script, err := os.ReadFile(filepath.Join(root, composeEnv))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, composeEnv), script, 0o755); err != nil {
		t.Fatal(err)
	}
	return tmp
}

func runComposeEnv(dir string) ([]byte, error) {
	cmd := exec.Command("bash", filepath.Join(dir, composeEnv))
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// env is the environment a service's container gets.
func (s *stack) env(t *testing.T, name string) map[string]string {
	t.Helper()
	svc, ok := s.project.Services[name]
	if !ok {
		t.Fatalf("%s has no service %s", composeFile, name)
	}
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// built lists the services built from the Dockerfile, sorted.
func (s *stack) built() []string {
	var out []string
	for _, name := range sortedServices(s.project) {
		if s.project.Services[name].Build != nil {
			out = append(out, name)
		}
	}
	return out
}

// config loads a Vigil service's settings as its process would.
func (s *stack) config(t *testing.T, name string) config.Config {
	t.Helper()
	env := s.env(t, name)
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("service %s: internal/config refuses its environment: %v", name, err)
	}
	return cfg
}

// listenAddrs maps port to listen address for each address a service built
// from the Dockerfile listens on.
func (s *stack) listenAddrs(t *testing.T, name string) map[string]string {
	t.Helper()
	var addrs []string
	switch name {
	case "worker":
		addrs = []string{s.config(t, name).WorkerMetricsAddr}
	case "web":
		cfg := s.config(t, name)
		addrs = []string{cfg.HTTPAddr, cfg.WebMetricsAddr}
	case "panel-standin":
		// standins/panel: -addr, else VIGIL_PANEL_STANDIN_ADDR, else loopback.
		addr := s.env(t, name)["VIGIL_PANEL_STANDIN_ADDR"]
		cmd := s.project.Services[name].Command
		for i, a := range cmd {
			if v, ok := strings.CutPrefix(a, "-addr="); ok {
				addr = v
			} else if a == "-addr" && i+1 < len(cmd) {
				addr = cmd[i+1]
			}
		}
		if addr == "" {
			addr = "127.0.0.1:8091"
		}
		addrs = []string{addr}
	case "sms-standin":
		// standins/sms: -http-addr, else VIGIL_SMSGATEWAY_HTTP_ADDR, else loopback.
		addr := s.env(t, name)["VIGIL_SMSGATEWAY_HTTP_ADDR"]
		cmd := s.project.Services[name].Command
		for i, a := range cmd {
			if v, ok := strings.CutPrefix(a, "-http-addr="); ok {
				addr = v
			} else if a == "-http-addr" && i+1 < len(cmd) {
				addr = cmd[i+1]
			}
		}
		if addr == "" {
			addr = "127.0.0.1:8035"
		}
		addrs = []string{addr}
	default:
		t.Fatalf("%s: service %s is built from %s but this test does not know where it listens: teach listenAddrs in deploy/compose_test.go", composeFile, name, dockerfile)
	}
	out := map[string]string{}
	for _, a := range addrs {
		if a == "" {
			continue
		}
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("service %s listens on %q: %v", name, a, err)
		}
		out[port] = a
	}
	return out
}

// dials maps each setting naming another service a Vigil process reaches to
// its host:port.
func (s *stack) dials(t *testing.T, name string) map[string]string {
	t.Helper()
	cfg := s.config(t, name)
	out := map[string]string{}
	db, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		t.Fatalf("service %s: VIGIL_DATABASE_URL: %v", name, err)
	}
	out["VIGIL_DATABASE_URL"] = hostPort(db.Host, "5432")
	out["VIGIL_TEMPORAL_ADDRESS"] = cfg.TemporalAddress
	if processes[name] == "worker" {
		out["VIGIL_SMTP_ADDR"] = cfg.SMTPAddr
		panel, err := url.Parse(cfg.PanelURL)
		if err != nil {
			t.Fatalf("service %s: VIGIL_PANEL_URL: %v", name, err)
		}
		port := "80"
		if panel.Scheme == "https" {
			port = "443"
		}
		out["VIGIL_PANEL_URL"] = hostPort(panel.Host, port)
		if cfg.SMSURL != "" {
			u, err := url.Parse(cfg.SMSURL)
			if err != nil {
				t.Fatalf("service %s: VIGIL_SMS_URL: %v", name, err)
			}
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			out["VIGIL_SMS_URL"] = hostPort(u.Host, port)
		}
	}
	return out
}

func hostPort(hp, defPort string) string {
	if _, _, err := net.SplitHostPort(hp); err == nil {
		return hp
	}
	return net.JoinHostPort(hp, defPort)
}

// requiredBy lists the settings internal/config marks as required by a
// process, from the defaults its Vars table documents.
func requiredBy(t *testing.T, process string) []string {
	t.Helper()
	var out []string
	for _, v := range config.Vars {
		if !strings.HasPrefix(v.Default, "(required") {
			continue
		}
		switch v.Default {
		case "(required)", "(required by " + process + ")":
			out = append(out, v.Name)
		case "(required by worker)", "(required by web)":
		default:
			t.Errorf("internal/config: %s's default %q says it is required in a way deploy/compose_test.go cannot read: write (required), (required by worker) or (required by web), or teach requiredBy", v.Name, v.Default)
		}
	}
	if !slices.Contains(out, "VIGIL_CODEC_KEYS") {
		t.Fatalf("internal/config.Vars marks no VIGIL_CODEC_KEYS as required by %s: requiredBy in deploy/compose_test.go no longer reads it", process)
	}
	return out
}

func defaultOf(name string) string {
	for _, v := range config.Vars {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}

// blankForOperator says whether compose-env writes the setting empty, for
// the operator to fill in (the Slack app's settings).
func blankForOperator(settings map[string]string, name string) bool {
	v, ok := settings[name]
	return ok && v == ""
}

func dependencyClosure(p *types.Project, name string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		for dep := range p.Services[n].DependsOn {
			if !seen[dep] {
				seen[dep] = true
				walk(dep)
			}
		}
	}
	walk(name)
	return seen
}

// mountedAt maps a path inside a service's container to the repository file
// bind-mounted there.
func mountedAt(svc types.ServiceConfig, p string) (string, bool) {
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if p == v.Target {
			return v.Source, true
		}
		if rest, ok := strings.CutPrefix(p, strings.TrimSuffix(v.Target, "/")+"/"); ok {
			return filepath.Join(v.Source, rest), true
		}
	}
	return "", false
}

// filesMountedIn lists the bind-mount targets that are files in dir, when no
// mount covers dir itself.
func filesMountedIn(svc types.ServiceConfig, dir string) []string {
	var out []string
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if fi, err := os.Stat(v.Source); err == nil && !fi.IsDir() && path.Dir(v.Target) == dir {
			out = append(out, v.Target)
		}
	}
	return out
}

var probePort = regexp.MustCompile(`(?:https?://(?:127\.0\.0\.1|localhost):(\d+))|(?:/dev/tcp/(?:127\.0\.0\.1|localhost)/(\d+))`)

// healthcheckPorts finds the local ports a healthcheck command probes.
func healthcheckPorts(cmd string) []string {
	var out []string
	for _, m := range probePort.FindAllStringSubmatch(cmd, -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

func isLoopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func sortedServices(p *types.Project) []string {
	names := p.ServiceNames()
	slices.Sort(names)
	return names
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// shellWords splits a shell command line into words, across ;, && and |.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	for line != "" {
		p := shellwords.NewParser()
		w, err := p.Parse(line)
		if err != nil {
			t.Fatalf("cannot read shell line %q: %v", line, err)
		}
		words = append(words, w...)
		if p.Position < 0 {
			break
		}
		line = strings.TrimLeft(line[p.Position:], ";&|<> \t")
		words = append(words, "&&")
	}
	return words
}

package packaging

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfile is a Dockerfile split into its build stages.
type dockerfile struct {
	stages []stage
}

type stage struct {
	from         string // the base image
	name         string // AS name, if any
	instructions []instruction
}

type instruction struct {
	line    int
	keyword string // upper case
	args    string // continuation lines joined
}

// words returns the arguments of an instruction: the JSON array of the
// exec form, else the words of the shell form.
func (in instruction) words() []string {
	if strings.HasPrefix(in.args, "[") {
		var w []string
		if json.Unmarshal([]byte(in.args), &w) == nil {
			return w
		}
	}
	return strings.Fields(in.args)
}

// parseDockerfile reads the instructions of a Dockerfile: comments and
// blank lines are dropped, lines ending in a backslash continue, and each
// FROM starts a stage.
func parseDockerfile(path string) (*dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	df := &dockerfile{}
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		} else {
			cur.WriteByte(' ')
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(strings.TrimSpace(rest))
			continue
		}
		cur.WriteString(line)
		keyword, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{line: start, keyword: strings.ToUpper(keyword), args: strings.TrimSpace(args)}
		if in.keyword == "FROM" {
			w := in.words()
			st := stage{from: w[0]}
			if len(w) == 3 && strings.EqualFold(w[1], "AS") {
				st.name = w[2]
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			if in.keyword == "ARG" {
				continue // ARG before the first FROM
			}
			return nil, fmt.Errorf("%s:%d: %s before the first FROM", path, in.line, in.keyword)
		}
		st := &df.stages[len(df.stages)-1]
		st.instructions = append(st.instructions, in)
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: ends in a continuation line", path)
	}
	return df, sc.Err()
}

// last returns the last instruction of a stage with the keyword.
func (s stage) last(keyword string) (instruction, bool) {
	for i := len(s.instructions) - 1; i >= 0; i-- {
		if s.instructions[i].keyword == keyword {
			return s.instructions[i], true
		}
	}
	return instruction{}, false
}

func (s stage) all(keyword string) []instruction {
	var out []instruction
	for _, in := range s.instructions {
		if in.keyword == keyword {
			out = append(out, in)
		}
	}
	return out
}

// TestDockerfile checks the image's build: multi-stage, a static binary
// from the Go version go.mod names, a final stage that runs as a non-root
// user with the spool on a volume, no remote ADD, and the ports and
// command the documentation promises.
func TestDockerfile(t *testing.T) {
	df, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a runtime stage", len(df.stages))
	}
	build, final := df.stages[0], df.stages[len(df.stages)-1]

	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, filepath.Join(root, "go.mod")))
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + goVersion[1]; build.from != want && !strings.HasPrefix(build.from, want+"-") && !strings.HasPrefix(build.from, want+".") {
		t.Errorf("build stage FROM %s; want %s (go.mod says go %s)", build.from, want, goVersion[1])
	}
	var static bool
	for _, in := range build.all("RUN") {
		static = static || strings.Contains(in.args, "CGO_ENABLED=0 go build")
	}
	if !static {
		t.Error("the build stage does not run CGO_ENABLED=0 go build")
	}
	if strings.HasPrefix(final.from, "golang:") {
		t.Errorf("the runtime stage is %s, the build image", final.from)
	}

	user, ok := final.last("USER")
	if !ok {
		t.Error("the runtime stage has no USER: it would run as root")
	} else if name, _, _ := strings.Cut(user.args, ":"); name == "root" || name == "0" || name == "" {
		t.Errorf("Dockerfile:%d: USER %s is root", user.line, user.args)
	}

	for _, st := range df.stages {
		for _, in := range st.all("ADD") {
			for _, w := range in.words() {
				if strings.Contains(w, "://") || strings.HasPrefix(w, "git@") {
					t.Errorf("Dockerfile:%d: ADD of a remote source %s; fetch in a RUN with a checksum or COPY it", in.line, w)
				}
			}
		}
	}

	// The image's config keeps its spool on a volume.
	cfg := loadWithSecrets(t, "packaging/docker/cuemta.cue", readFile(t, "docker/cuemta.cue"), nil)
	var volumes []string
	for _, in := range final.all("VOLUME") {
		volumes = append(volumes, in.words()...)
	}
	if !slices.ContainsFunc(volumes, func(v string) bool { return within(cfg.Spool.Dir, v) }) {
		t.Errorf("the spool %s is on no VOLUME (volumes: %v)", cfg.Spool.Dir, volumes)
	}
	if host, _, _ := strings.Cut(cfg.Admin.Addr, ":"); host != "127.0.0.1" && host != "localhost" && host != "[::1]" {
		t.Errorf("the image's admin API listens on %s; keep it on loopback (no token in a shipped config)", cfg.Admin.Addr)
	}

	var exposed []string
	for _, in := range final.all("EXPOSE") {
		exposed = append(exposed, in.words()...)
	}
	for _, p := range []string{"25", "587"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s", exposed, p)
		}
	}
	if _, admin, _ := strings.Cut(cfg.Admin.Addr, ":"); slices.Contains(exposed, admin) {
		t.Errorf("EXPOSE %v includes the admin port %s, which listens on loopback", exposed, admin)
	}

	// The command serves the config the image ships.
	entry, _ := final.last("ENTRYPOINT")
	cmd, _ := final.last("CMD")
	argv := append(entry.words(), cmd.words()...)
	if !slices.Equal(argv[:min(len(argv), 4)], []string{"/usr/local/bin/cuemta", "serve", "-c", "/etc/cuemta"}) {
		t.Errorf("ENTRYPOINT and CMD run %q; want /usr/local/bin/cuemta serve -c /etc/cuemta", argv)
	}
	var env []string
	for _, in := range final.all("ENV") {
		env = append(env, in.words()...)
	}
	if want := "CUEMTA_CONFIG=/etc/cuemta"; !slices.Contains(env, want) {
		t.Errorf("ENV %v lacks %s: `docker exec ... cuemta status` and sendmail would not find the server", env, want)
	}
	var shipsConfig bool
	for _, in := range build.all("RUN") {
		shipsConfig = shipsConfig || strings.Contains(in.args, "packaging/docker/cuemta.cue /out/etc/cuemta/")
	}
	if !shipsConfig {
		t.Error("the build stage does not copy packaging/docker/cuemta.cue into /etc/cuemta")
	}

	ignore := strings.Fields(readFile(t, filepath.Join(root, ".dockerignore")))
	for _, p := range []string{".git", "bin", "cuemta-spool"} {
		if !slices.Contains(ignore, p) {
			t.Errorf(".dockerignore does not leave out %s", p)
		}
	}
}

// TestImageBinary checks what the Dockerfile's build command produced: a
// static executable (distroless/static has no C library) that carries the
// version given at build time.
func TestImageBinary(t *testing.T) {
	f, err := elf.Open(binary)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked: it will not run on distroless/static")
		}
	}
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "cuemta packaging-test" {
		t.Errorf("cuemta version = %q, %v; want the VERSION the build was given", out, err)
	}
}

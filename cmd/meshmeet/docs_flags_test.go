package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// The docs and the deployment files say what an operator may type. Every
// `--flag` they mention must be a flag of the command they mean, as that
// command's --help shows it, unless the same line says the flag is
// planned; every MESHMEET_ variable a deployment file sets must be one that
// `meshmeet serve --help` lists.

var (
	// flagMention is a --flag in prose, a table or a command line; a name
	// ending in "-" followed by "*" (`--jwt-*`) stands for every flag with
	// that prefix.
	flagMention = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*-?)(\*?)`)
	// envMention is a MESHMEET_ variable.
	envMention = regexp.MustCompile(`\bMESHMEET_[A-Z0-9_]*[A-Z0-9]\b`)
	// commandMention names a meshmeet command on a line.
	commandMention = regexp.MustCompile(`\bmeshmeet (serve|bench|cluster init|cluster status|cluster drain|cluster|room new|room check|room|token|version)\b`)
	// foreignCommand names another program whose flags a line may give
	// (the AWS CLI and the shell tools of the boot script, coturn, ...).
	foreignCommand = regexp.MustCompile(`\b(aws|apt-get|ffmpeg|livekit-server|lk|curl|sha256sum|sysctl|systemctl|coturn|turnserver|turnutils_[a-z]+|terraform|chromium|valgrind|perf|taskset|go (?:test|build|install|run|tool))\b`)
	planned        = regexp.MustCompile(`(?i)\bplanned\b`)
)

// commandHelp returns, for every command path ("serve", "cluster status"),
// the flags (without "--") and MESHMEET_ variables its --help shows.
func commandHelp(t *testing.T) (flags map[string]map[string]bool, envs map[string]bool) {
	t.Helper()
	flags = map[string]map[string]bool{}
	envs = map[string]bool{}
	helpFlag := regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z][a-z0-9-]*)`)
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "help" || c.Hidden {
				continue
			}
			p := append(slices.Clone(path), c.Name)
			var out bytes.Buffer
			app := newApp()
			app.Writer, app.ErrWriter = &out, &out
			args := append(append([]string{"meshmeet"}, p...), "--help")
			if err := app.Run(args); err != nil {
				t.Fatalf("%s: %v", strings.Join(args, " "), err)
			}
			help := out.String()
			set := map[string]bool{}
			for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
				set[m[1]] = true
			}
			// "--help, -h" and aliases: every --name on an option line.
			for _, line := range strings.Split(help, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "-") {
					for _, m := range flagMention.FindAllStringSubmatch(line, -1) {
						set[m[1]] = true
					}
				}
			}
			flags[strings.Join(p, " ")] = set
			for _, e := range envMention.FindAllString(help, -1) {
				envs[e] = true
			}
			walk(p, c.Subcommands)
		}
	}
	walk(nil, newApp().Commands)
	if len(flags["serve"]) < 10 {
		t.Fatalf("meshmeet serve --help shows only %d flags: %v", len(flags["serve"]), flags["serve"])
	}
	return flags, envs
}

// docFiles are the files whose flags are checked: README.md, docs/ and
// deploy/ (units, Terraform, templates, READMEs), not Go code.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../../README.md"}
	for _, root := range []string{"../../docs", "../../deploy"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			switch filepath.Ext(path) {
			case ".md", ".service", ".tf", ".tftpl", ".sh", ".yaml", ".yml", ".env":
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// defaultCommands are the commands a flag of a file may belong to when its
// line names none.
func defaultCommands(file string) []string {
	switch filepath.Base(file) {
	case "bench.md", "benchmarks.md":
		// bench's own flags, and serve's, passed to local nodes with
		// --node-arg or measured in their own runs.
		return []string{"bench", "serve"}
	case "cluster.md":
		return []string{"serve", "cluster init", "cluster status"}
	}
	return []string{"serve"}
}

// flagChecker checks the lines of one file against the commands' help.
type flagChecker struct {
	help map[string]map[string]bool // command path → its flags
	envs map[string]bool            // MESHMEET_ variables serve reads
}

func (fc *flagChecker) has(cmds []string, name string, prefix bool) bool {
	for _, c := range cmds {
		for f := range fc.help[c] {
			if f == name || (prefix && strings.HasPrefix(f, name)) {
				return true
			}
		}
	}
	return false
}

// check returns the problems of file rel (a path relative to the
// repository) with content src, and the number of mentions it checked.
func (fc *flagChecker) check(rel string, src []byte) (problems []string, checked int) {
	deployFile := strings.HasPrefix(rel, "deploy/")
	var prev string
	foreignCont := false // a shell command of another program continues on this line
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		foreign := foreignCont || (foreignCommand.MatchString(line) && !commandMention.MatchString(line))
		foreignCont = foreign && strings.HasSuffix(strings.TrimSpace(line), `\`)
		// A systemd unit cannot carry a comment on a setting's line: the
		// comment line just above it counts as the same line.
		isPlanned := planned.MatchString(line) ||
			(filepath.Ext(rel) == ".service" && strings.HasPrefix(strings.TrimSpace(prev), "#") && planned.MatchString(prev))

		// The commands this line and the one before name (prose wraps
		// "meshmeet bench" and its flag onto two lines), and the file's.
		var cmds []string
		for _, m := range commandMention.FindAllStringSubmatch(prev+"\n"+line, -1) {
			if !slices.Contains(cmds, m[1]) {
				cmds = append(cmds, m[1])
			}
		}
		for _, c := range defaultCommands(rel) {
			if !slices.Contains(cmds, c) {
				cmds = append(cmds, c)
			}
		}
		prev = line
		var missing, stale []string
		if !foreign {
			for _, m := range flagMention.FindAllStringSubmatchIndex(line, -1) {
				name, prefix := line[m[2]:m[3]], m[5] > m[4]
				if strings.HasSuffix(name, "-") && !prefix {
					continue // "--foo-" followed by something else: not a flag
				}
				checked++
				// "`--flag`, planned" or "--flag (planned)": this mention
				// itself is marked.
				marked := planned.MatchString(line[m[1]:min(len(line), m[1]+14)])
				switch {
				case !fc.has(cmds, name, prefix):
					missing = append(missing, "--"+name)
				case marked:
					stale = append(stale, "--"+name)
				}
			}
		}
		if deployFile {
			for _, e := range envMention.FindAllString(line, -1) {
				checked++
				if !fc.envs[e] {
					missing = append(missing, e)
				}
			}
		}
		help := "`meshmeet " + strings.Join(cmds, " --help` or `meshmeet ") + " --help`"
		if len(missing) > 0 && !isPlanned {
			problems = append(problems, fmt.Sprintf("%s:%d: %s: not in %s; fix the name, or say on the same line that it is planned",
				rel, n, strings.Join(missing, ", "), help))
		}
		if len(stale) > 0 {
			problems = append(problems, fmt.Sprintf("%s:%d: %s: marked planned, but %s has it now: drop the mark",
				rel, n, strings.Join(stale, ", "), help))
		}
	}
	return problems, checked
}

// TestDocsFlagsExist reads every --flag mentioned in README.md, docs/ and
// deploy/ and checks that the command it belongs to has it, and every
// MESHMEET_ variable of deploy/ against `meshmeet serve --help`.
func TestDocsFlagsExist(t *testing.T) {
	help, envs := commandHelp(t)
	fc := &flagChecker{help: help, envs: envs}
	total := 0
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		problems, checked := fc.check(strings.TrimPrefix(file, "../../"), src)
		for _, p := range problems {
			t.Error(p)
		}
		total += checked
	}
	if total < 100 {
		t.Errorf("only %d mentions checked: the scan is broken", total)
	}
}

// TestDocsFlagsChecker feeds the checker lines of each kind.
func TestDocsFlagsChecker(t *testing.T) {
	fc := &flagChecker{
		help: map[string]map[string]bool{
			"serve": {"http-addr": true, "jwt-secret-file": true},
			"bench": {"turn-only": true},
		},
		envs: map[string]bool{"MESHMEET_HTTP_ADDR": true},
	}
	for _, tc := range []struct {
		name, file, src string
		want            []string // substrings, one per expected problem
	}{
		{"known flag", "docs/x.md", "Set `--http-addr` to listen.", nil},
		{"unknown flag", "docs/x.md", "Set `--relay-addr` to relay.", []string{"x.md:1: --relay-addr: not in `meshmeet serve --help`"}},
		{"unknown flag marked planned", "docs/x.md", "| 7443 | UDP | relay (`--relay-addr`, planned) |", nil},
		{"planned elsewhere on the line", "docs/x.md", "The relay is planned; it will take `--relay-addr`.", nil},
		{"stale mark", "docs/x.md", "Listen on `--http-addr` (planned).", []string{"--http-addr: marked planned"}},
		{"the command on the line", "docs/x.md", "Run `meshmeet bench --turn-only`.", nil},
		{"the command wrapped onto the line before", "docs/x.md", "Run `meshmeet bench\n--turn-only` to see.", nil},
		{"a command two lines up does not count", "docs/x.md", "Run `meshmeet bench`.\nThen\n`--turn-only`.", []string{"x.md:3: --turn-only"}},
		{"another command's flag", "docs/x.md", "Run `meshmeet serve --turn-only`.", []string{"--turn-only: not in `meshmeet serve --help`"}},
		{"the file's command", "docs/bench.md", "`--turn-only` sends media through TURN.", nil},
		{"prefix", "docs/x.md", "The `--jwt-*` flags, and `--auth-*`.", []string{"--auth-: not in"}},
		{"foreign program", "docs/x.md", "sudo systemctl enable --now meshmeet", nil},
		{"foreign continuation", "deploy/b.sh", "aws ec2 do \\\n  --instance-id x \\\n  --query y\nmeshmeet serve --bogus", []string{"b.sh:4: --bogus"}},
		{"env in deploy", "deploy/x.service", "Environment=MESHMEET_HTTP_ADDR=0.0.0.0:7880\nEnvironment=MESHMEET_RELAY_ADDR=0.0.0.0:7443", []string{"x.service:2: MESHMEET_RELAY_ADDR"}},
		{"env planned in the comment above", "deploy/x.service", "# The relay is planned.\nEnvironment=MESHMEET_RELAY_ADDR=0.0.0.0:7443", nil},
		{"env in docs is not checked", "docs/x.md", "Each flag reads MESHMEET_X.", nil},
		{"table separators and dashes", "docs/x.md", "| --- | --- |\nwell -- not a flag", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems, _ := fc.check(tc.file, []byte(tc.src))
			if len(problems) != len(tc.want) {
				t.Fatalf("problems %q, want %d matching %q", problems, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(problems[i], w) {
					t.Errorf("problem %q does not contain %q", problems[i], w)
				}
			}
		})
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
)

// Exit codes scripts can rely on; "run" exits with the process's own code.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// stdio is what a command reads, writes and sees of its environment. The
// program passes its own; a command forwarded to the process holding the
// rack gets the caller's.
type stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the caller's environment.
	Getenv func(string) string
	// Dir is the caller's working directory, against which relative paths
	// in arguments are resolved.
	Dir string
	// TTY is true when Stdout is a terminal: deploy progress then updates
	// one status line in place.
	TTY bool
	// StdinTTY is true when Stdin is a terminal, so that a command may ask
	// a question (apps delete).
	StdinTTY bool
}

// processStdio returns the program's own stdio.
func processStdio() stdio {
	wd, _ := os.Getwd()
	return stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Dir: wd,
		TTY: isTerminal(os.Stdout), StdinTTY: isTerminal(os.Stdin)}
}

// globals are the flags every command accepts.
type globals struct {
	app     string
	json    bool
	rack    string
	rackDir string
	// wait bounds the wait for a local rack another program holds.
	wait time.Duration
	// debug shows the SDK's operation names in errors.
	debug bool
}

// register adds the global flags to fs; their current values are the defaults.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.app, "app", g.app, "the app `NAME` ($CONVOX_APP)")
	fs.StringVar(&g.app, "a", g.app, "shorthand for --app `NAME`")
	fs.BoolVar(&g.json, "json", g.json, "machine-readable output")
	fs.StringVar(&g.rack, "rack", g.rack, "the `RACK`: local or aws ($CONVOX_RACK; see convox help aws)")
	fs.StringVar(&g.rackDir, "rack-dir", g.rackDir, "the local rack's directory `DIR` ($CONVOX_RACK_DIR)")
	fs.DurationVar(&g.wait, "wait", g.wait, "how long to wait for a local rack another program holds (0: fail at once)")
	fs.BoolVar(&g.debug, "debug", g.debug, "show the SDK's operation in error messages")
}

// command is one CLI command.
type command struct {
	name    string // "deploy", "apps create"
	args    string // the synopsis after the name
	summary string
	help    string // longer description, shown by --help
	// flags adds the command's own flags to fs and returns the value its
	// run function receives.
	flags func(fs *flag.FlagSet) any
	// noRack is true for commands that never open a rack.
	noRack bool
	// confirm, when set, returns the question the command asks on a
	// terminal before it runs, unless its options say not to ask.
	confirm func(args []string, opts any) (question, answer string, ask bool)
	run     func(ctx context.Context, s *session, args []string, opts any) error
}

// commands returns every command, in the order help lists them.
func commands() []*command {
	return []*command{
		appsCreateCmd(), appsListCmd(), appsInfoCmd(), appsDeleteCmd(),
		buildCmd(), deployCmd(), planCmd(), driftCmd(),
		releasesListCmd(), releasesInfoCmd(), releasesDiffCmd(),
		rollbackCmd(), cancelCmd(), scaleCmd(),
		envListCmd(), envSetCmd(), envUnsetCmd(),
		runCmd(), psCmd(), logsCmd(), serveCmd(),
	}
}

// groups are the command names that take a subcommand.
var groups = []string{"apps", "releases", "env"}

// usageError is a malformed command line: exit code 2.
type usageError struct {
	cmd string // the command whose usage to point at; "" for the program's
	msg string
}

func (e *usageError) Error() string { return e.msg }

// usagef returns a usage error of cmd.
func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// exitCodeError ends the program with a given exit code without a message
// (the exit code of a one-off process).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// notFoundError is a lookup the CLI itself made that found nothing: its
// message is the user's, and it matches providers.ErrNotFound (exit 1, JSON
// code "not_found").
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == providers.ErrNotFound }

// notFoundf returns a notFoundError.
func notFoundf(format string, args ...any) error {
	return &notFoundError{msg: fmt.Sprintf(format, args...)}
}

// hintError adds what to do next to an error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint attaches a hint to err.
func withHint(err error, format string, args ...any) error {
	return &hintError{err: err, hint: fmt.Sprintf(format, args...)}
}

// runCLI runs one command line and returns the exit code.
func runCLI(ctx context.Context, args []string, std stdio) int {
	return execute(ctx, args, std, nil)
}

// execute runs one command line. h is the rack this process holds when the
// command was forwarded to it by another convox process, else nil.
func execute(ctx context.Context, args []string, std stdio, h *holder) int {
	g := &globals{
		app:     std.Getenv("CONVOX_APP"),
		rack:    std.Getenv("CONVOX_RACK"),
		rackDir: std.Getenv("CONVOX_RACK_DIR"),
		wait:    defaultWait,
	}
	if g.rack == "" {
		g.rack = "local"
	}
	if g.rackDir == "" {
		g.rackDir = ".convox"
	}
	top := flag.NewFlagSet("convox", flag.ContinueOnError)
	top.SetOutput(io.Discard) // errors are reported below
	g.register(top)
	top.Usage = func() {}
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(std.Stdout, top)
			return exitOK
		}
		return report(std, g, "", usagef("", "%s", flagMessage(err)))
	}
	rest := top.Args()
	if len(rest) == 0 {
		printHelp(std.Stderr, top)
		return exitUsage
	}
	if rest[0] == "help" {
		if len(rest) == 1 {
			printHelp(std.Stdout, top)
			return exitOK
		}
		if rest[1] == "aws" {
			fmt.Fprintln(std.Stdout, awsHelp)
			return exitOK
		}
		cmd := lookup(rest[1:])
		if cmd == nil && slices.Contains(groups, rest[1]) {
			printGroupHelp(std.Stdout, rest[1])
			return exitOK
		}
		if cmd == nil {
			return report(std, g, "", usagef("", "unknown command %q", strings.Join(rest[1:], " ")))
		}
		fs, _ := cmd.flagSet(g, std.Stdout)
		cmd.printHelp(std.Stdout, fs)
		return exitOK
	}
	cmd := lookup(rest)
	if cmd == nil {
		if slices.Contains(groups, rest[0]) {
			if len(rest) > 1 && slices.Contains([]string{"-h", "-help", "--help"}, rest[1]) {
				printGroupHelp(std.Stdout, rest[0])
				return exitOK
			}
			return report(std, g, rest[0], usagef(rest[0], "%s needs a subcommand: %s", rest[0], strings.Join(subcommands(rest[0]), ", ")))
		}
		return report(std, g, "", usagef("", "unknown command %q", rest[0]))
	}
	cmdArgs := rest[len(strings.Fields(cmd.name)):]
	fs, opts := cmd.flagSet(g, io.Discard) // errors are reported below
	pos, err := parseInterspersed(fs, cmdArgs)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(std.Stdout)
		cmd.printHelp(std.Stdout, fs)
		return exitOK
	}
	if err != nil {
		return report(std, g, cmd.name, usagef(cmd.name, "%s", flagMessage(err)))
	}
	switch g.rack {
	case "local", "aws":
	default:
		return report(std, g, cmd.name, usagef(cmd.name, "unknown rack %q: use --rack local or --rack aws", g.rack))
	}
	if g.wait < 0 {
		return report(std, g, cmd.name, usagef(cmd.name, "--wait must not be negative"))
	}
	if cmd.confirm != nil {
		if question, answer, ask := cmd.confirm(pos, opts); ask {
			if err := confirm(std, cmd.name, question, answer); err != nil {
				return report(std, g, cmd.name, err)
			}
			// Confirmed here, where the terminal is: a command forwarded
			// to the process holding the rack must not ask again.
			args = append(slices.Clone(args), "--yes")
		}
	}
	forwardable := !cmd.noRack && g.rack == "local" && h == nil
	if forwardable && readsStdin(cmdArgs) && std.Stdin != nil {
		// Read standard input once: the command may run here or be
		// forwarded to the process holding the rack.
		in, err := io.ReadAll(io.LimitReader(std.Stdin, 1<<20))
		if err != nil {
			return report(std, g, cmd.name, fmt.Errorf("read standard input: %w", err))
		}
		std.Stdin = bytes.NewReader(in)
	}
	for {
		if r, ok := std.Stdin.(*bytes.Reader); ok && forwardable {
			r.Seek(0, io.SeekStart) // each attempt reads it from the start
		}
		if forwardable {
			if code, ok := forward(ctx, g, args, std); ok {
				return code
			}
		}
		s := &session{g: g, std: std, held: h, cmd: cmd.name}
		err = cmd.run(ctx, s, pos, opts)
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
		if forwardable && errors.Is(err, errHeldElsewhere) {
			// Another convox process took the rack and accepts commands:
			// nothing was done here yet, so run the command there.
			continue
		}
		return report(std, g, cmd.name, err)
	}
}

// lookup finds the command named by the first one or two words of args.
func lookup(args []string) *command {
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c
		}
	}
	return nil
}

// subcommands lists the subcommands of a group.
func subcommands(group string) []string {
	var out []string
	for _, c := range commands() {
		if g, sub, ok := strings.Cut(c.name, " "); ok && g == group {
			out = append(out, sub)
		}
	}
	return out
}

// flagSet builds the command's flag set: its own flags and the global ones.
func (c *command) flagSet(g *globals, out io.Writer) (*flag.FlagSet, any) {
	fs := flag.NewFlagSet("convox "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {}
	var opts any
	if c.flags != nil {
		opts = c.flags(fs)
	}
	g.register(fs)
	return fs, opts
}

// printHelp describes the command.
func (c *command) printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: convox %s %s\n\n%s\n", c.name, c.args, c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	fmt.Fprintln(w, "\nFlags:")
	printFlags(w, fs)
}

// printFlags lists a flag set's flags as they are written on a command
// line: --name VALUE (and -a for the one-letter shorthands).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		name = strings.ToUpper(name)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		spec := dash + f.Name
		if name != "" {
			spec += " " + name
		}
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", spec, usage)
	})
	tw.Flush()
}

// flagMessage rewrites the flag package's errors the way flags are written
// on a command line, with two dashes.
func flagMessage(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag " + dashed(name)
	}
	if rest, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return dashed(rest) + " needs a value"
	}
	if i := strings.Index(msg, " for flag -"); i >= 0 {
		head, tail := msg[:i], msg[i+len(" for flag -"):]
		name, detail, _ := strings.Cut(tail, ":")
		return fmt.Sprintf("%s for %s:%s", head, dashed(name), detail)
	}
	return msg
}

// dashed writes a flag name with its dashes: --name, or -a for one letter.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// printGroupHelp lists the subcommands of a group.
func printGroupHelp(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: convox %s SUBCOMMAND\n\n", group)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		if g, _, _ := strings.Cut(c.name, " "); g == group {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun \"convox help %s SUBCOMMAND\" for its flags.\n", group)
}

// printHelp describes the program.
func printHelp(w io.Writer, top *flag.FlagSet) {
	fmt.Fprint(w, `convox deploys apps on a rack: a local one by default.

Usage: convox [global flags] COMMAND [arguments] [flags]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Global flags (before or after the command):
`)
	printFlags(w, top)
	fmt.Fprint(w, `
Exit codes: 0 ok; 1 the command failed (a failed deploy, a missing app, ...);
2 usage error; run exits with the process's exit code.

Run "convox help COMMAND" for a command's flags, "convox help aws" for the
AWS rack's settings.
`)
}

// parseInterspersed parses flags anywhere among the positional arguments,
// up to a "--"; everything after "--" is positional as given.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	head, tail, dash := args, []string(nil), false
	if i := slices.Index(args, "--"); i >= 0 {
		head, tail, dash = args[:i], args[i+1:], true
	}
	var pos []string
	for {
		if err := fs.Parse(head); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		head = rest[1:]
	}
	if dash {
		pos = append(pos, "--")
		pos = append(pos, tail...)
	}
	return pos, nil
}

// splitDash splits positional arguments at "--".
func splitDash(pos []string) (before, after []string, dash bool) {
	if i := slices.Index(pos, "--"); i >= 0 {
		return pos[:i], pos[i+1:], true
	}
	return pos, nil, false
}

// report prints the error of the command cmd ("" for none) the way the
// output mode wants and returns the exit code.
func report(std stdio, g *globals, cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	code := exitFailed
	var ue *usageError
	var re *rackError
	isUsage := errors.As(err, &ue)
	if isUsage || (errors.Is(err, providers.ErrInvalid) && !errors.As(err, &re)) {
		code = exitUsage
	}
	msg := userMessage(err, g.debug)
	prefix := "convox"
	if cmd != "" {
		prefix += " " + cmd
		// "convox scale: scale needs ..." says the command once.
		msg = strings.TrimPrefix(msg, cmd+" ")
	}
	fmt.Fprintf(std.Stderr, "%s: %s\n", prefix, msg)
	var he *hintError
	if errors.As(err, &he) && he.hint != "" {
		fmt.Fprintln(std.Stderr, he.hint)
	}
	if isUsage {
		if ue.cmd != "" {
			fmt.Fprintf(std.Stderr, "run \"convox help %s\" for usage\n", ue.cmd)
		} else {
			fmt.Fprintln(std.Stderr, "run \"convox help\" for usage")
		}
	}
	if g.json {
		doc := toErrorDoc(err, isUsage)
		doc.Error.Message = msg
		writeJSON(std.Stdout, doc)
	}
	return code
}

// userMessage renders err for the person who ran the command: an SDK
// error names the app and release it failed on, and its operation (the
// SDK method, such as "Deploy") only with --debug.
func userMessage(err error, debug bool) string {
	msg := err.Error()
	var e *convox.Error
	if errors.As(err, &e) {
		inner := strings.TrimPrefix(e.Error(), "convox: ")
		if !debug {
			inner = objectOf(e) + e.Err.Error()
		}
		msg = strings.Replace(msg, e.Error(), inner, 1)
	}
	// A deploy that stopped before it changed anything reads like any
	// other refused call: what it was about and why.
	var de *convox.DeployError
	if errors.As(err, &de) && !de.Changed && !debug {
		obj := "app " + quoteName(de.App) + ": "
		if de.Release != "" {
			obj = "app " + quoteName(de.App) + " release " + quoteName(de.Release) + ": "
		}
		msg = strings.Replace(msg, de.Error(), obj+de.Err.Error(), 1)
	}
	return strings.TrimPrefix(msg, "convox: ")
}

// objectOf names what an SDK error is about: "app web release R3: ".
func objectOf(e *convox.Error) string {
	var parts []string
	if e.App != "" {
		parts = append(parts, "app "+quoteName(e.App))
	}
	if e.Release != "" {
		parts = append(parts, "release "+quoteName(e.Release))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " ") + ": "
}

// quoteName quotes a name unless it is made of letters, digits, '-', '_'
// and '.' only, so that a hostile name cannot forge output.
func quoteName(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return strconv.Quote(s)
		}
	}
	if s == "" || s == "." || s == ".." {
		return strconv.Quote(s)
	}
	return s
}

// confirm asks question on the terminal and returns nil once the answer
// typed is answer. Without a terminal to ask on it fails with a hint.
func confirm(std stdio, cmd, question, answer string) error {
	if !std.StdinTTY || std.Stdin == nil {
		return withHint(usagef(cmd, "%s asks for confirmation, and standard input is not a terminal", cmd), "add --yes to %s without asking", cmd)
	}
	fmt.Fprintf(std.Stderr, "%s Type %q to confirm: ", question, answer)
	line, err := bufio.NewReader(io.LimitReader(std.Stdin, 4096)).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(std.Stderr)
		return errors.New("not confirmed: nothing was done")
	}
	if strings.TrimSpace(line) != answer {
		return fmt.Errorf("not confirmed (the answer was not %q): nothing was done", answer)
	}
	return nil
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

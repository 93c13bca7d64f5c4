package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/convox-go/convox"
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
}

// processStdio returns the program's own stdio.
func processStdio() stdio {
	wd, _ := os.Getwd()
	return stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Dir: wd, TTY: isTerminal(os.Stdout)}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// globals are the flags every command accepts.
type globals struct {
	app     string
	json    bool
	rack    string
	rackDir string
}

// register adds the global flags to fs; their current values are the defaults.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.app, "app", g.app, "the app `NAME` ($CONVOX_APP)")
	fs.StringVar(&g.app, "a", g.app, "shorthand for --app")
	fs.BoolVar(&g.json, "json", g.json, "machine-readable output")
	fs.StringVar(&g.rack, "rack", g.rack, "the rack: local or aws ($CONVOX_RACK; see convox help aws)")
	fs.StringVar(&g.rackDir, "rack-dir", g.rackDir, "the local rack's `directory` ($CONVOX_RACK_DIR)")
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
	run    func(ctx context.Context, s *session, args []string, opts any) error
}

// commands returns every command, in the order help lists them.
func commands() []*command {
	return []*command{
		appsCreateCmd(), appsListCmd(), appsInfoCmd(), appsDeleteCmd(),
		buildCmd(), deployCmd(),
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
		return report(std, g, usagef("", "%v", err))
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
			return report(std, g, usagef("", "unknown command %q", strings.Join(rest[1:], " ")))
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
			return report(std, g, usagef(rest[0], "%s needs a subcommand: %s", rest[0], strings.Join(subcommands(rest[0]), ", ")))
		}
		return report(std, g, usagef("", "unknown command %q", rest[0]))
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
		return report(std, g, usagef(cmd.name, "%v", err))
	}
	switch g.rack {
	case "local", "aws":
	default:
		return report(std, g, usagef(cmd.name, "unknown rack %q: use --rack local or --rack aws", g.rack))
	}
	forwardable := !cmd.noRack && g.rack == "local" && h == nil
	if forwardable && readsStdin(cmdArgs) && std.Stdin != nil {
		// Read standard input once: the command may run here or be
		// forwarded to the process holding the rack.
		in, err := io.ReadAll(io.LimitReader(std.Stdin, 1<<20))
		if err != nil {
			return report(std, g, fmt.Errorf("read standard input: %w", err))
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
		s := &session{g: g, std: std, held: h}
		err = cmd.run(ctx, s, pos, opts)
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
		if forwardable && errors.Is(err, errHeldElsewhere) {
			// Another convox process took the rack and accepts commands:
			// nothing was done here yet, so run the command there.
			continue
		}
		return report(std, g, err)
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
	fs.SetOutput(w)
	fs.PrintDefaults()
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
	top.SetOutput(w)
	top.PrintDefaults()
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

// report prints err (if any) the way the output mode wants and returns
// the exit code.
func report(std stdio, g *globals, err error) int {
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	code := exitFailed
	var ue *usageError
	isUsage := errors.As(err, &ue)
	if isUsage || convox.CodeOf(err) == convox.CodeInvalid {
		code = exitUsage
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "convox: ") {
		msg = "convox: " + msg
	}
	fmt.Fprintln(std.Stderr, msg)
	var he *hintError
	if errors.As(err, &he) && he.hint != "" {
		fmt.Fprintln(std.Stderr, he.hint)
	}
	if isUsage {
		if ue.cmd != "" {
			fmt.Fprintf(std.Stderr, "run \"convox %s --help\" for usage\n", ue.cmd)
		} else {
			fmt.Fprintln(std.Stderr, "run \"convox help\" for usage")
		}
	}
	if g.json {
		writeJSON(std.Stdout, toErrorDoc(err, isUsage))
	}
	return code
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

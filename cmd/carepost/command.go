package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// command is a node of the command tree: a group of subcommands, a leaf
// that runs, or both (`user app-password ADDRESS` runs, `user app-password
// list ADDRESS` descends).
type command struct {
	name    string
	args    string // synopsis of the positional arguments, e.g. "ADDRESS"
	summary string // one line, for the lists
	long    string // more, for the command's own help
	// aliases are older names that still work; they are not listed.
	aliases []string
	// hidden commands work and have their help, but are not listed
	// (older spellings kept for scripts).
	hidden bool
	// required flags: "--NAME is required" when one is absent or empty.
	required []string
	// minArgs and maxArgs bound the positional arguments (maxArgs < 0:
	// no bound).
	minArgs, maxArgs int
	// setup registers the command's flags on fs and returns what runs
	// once they are parsed; nil for a pure group.
	setup func(fs *flag.FlagSet) func(e *env, pos []string) error
	subs  []*command
}

// runner is what a command's setup returns.
type runner = func(e *env, pos []string) error

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
		for _, a := range s.aliases {
			if a == name {
				return s
			}
		}
	}
	return nil
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

// takeCommon consumes a global flag at the head of args (--data DIR,
// --data=DIR, --config FILE, …); it returns the rest, and whether it took
// one.
func takeCommon(c *commonFlags, args []string) ([]string, bool, error) {
	a := args[0]
	name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
	if !strings.HasPrefix(a, "-") || (name != "data" && name != "config") {
		return args, false, nil
	}
	rest := args[1:]
	if !hasValue {
		if len(rest) == 0 {
			return nil, false, usageError("--%s needs a value", name)
		}
		value, rest = rest[0], rest[1:]
	}
	if name == "data" {
		c.data = value
	} else {
		c.config = value
	}
	return rest, true, nil
}

// dispatch walks the tree along args and runs the command found. It
// returns the path of the command reached, for the usage hint.
func dispatch(e *env, root *command, args []string) ([]string, error) {
	c := root
	var path []string
	for {
		// Global flags may come before any name.
		for len(args) > 0 {
			var took bool
			var err error
			if args, took, err = takeCommon(&e.common, args); err != nil {
				return path, err
			}
			if !took {
				break
			}
		}
		if len(args) == 0 {
			if c == root {
				printHelp(e.stdout, root, nil)
				return nil, nil
			}
			if c.setup == nil { // a group alone: what is in it
				printHelp(e.stdout, c, path)
				return path, nil
			}
			break
		}
		if c == root && args[0] == "help" {
			return helpCommand(e, root, args[1:])
		}
		if isHelp(args[0]) && (c.setup == nil || c == root) {
			printHelp(e.stdout, c, path)
			return path, nil
		}
		s := c.sub(args[0])
		if s == nil {
			if c.setup != nil {
				break
			}
			if c == root {
				return nil, usageError("unknown command %q", args[0])
			}
			return path, usageError("%s: unknown subcommand %q (%s)", strings.Join(path, " "), args[0], subNames(c))
		}
		c, path, args = s, append(path, s.name), args[1:]
	}
	return path, runLeaf(e, c, path, args)
}

// helpCommand is `carepost help [COMMAND…]`.
func helpCommand(e *env, root *command, args []string) ([]string, error) {
	c := root
	var path []string
	for _, a := range args {
		s := c.sub(a)
		if s == nil {
			return path, usageError("help: no command %q", strings.Join(append(path, a), " "))
		}
		c, path = s, append(path, s.name)
	}
	printHelp(e.stdout, c, path)
	return path, nil
}

func subNames(c *command) string {
	var names []string
	for _, s := range c.subs {
		if s.hidden {
			continue
		}
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

// newFlagSet makes the flag set of a command, with the global flags,
// whose values given before the command's name are the defaults.
func newFlagSet(name string, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.config, "config", c.config, "configuration `FILE` (TOML, see deploy/carepost.toml); without it, the embedded default")
	fs.StringVar(&c.data, "data", c.data, "data directory `DIR` (default ./carepost-data, or data in the --config file)")
	return fs
}

// runLeaf parses a command's flags and runs it.
func runLeaf(e *env, c *command, path, args []string) error {
	name := strings.Join(path, " ")
	fs := newFlagSet(name, &e.common)
	run := c.setup(fs)
	pos, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(e.stdout, c, path)
		return nil
	}
	if err != nil {
		return err
	}
	var missing []string
	for _, r := range c.required {
		if f := fs.Lookup(r); f != nil && strings.TrimSpace(f.Value.String()) == "" {
			missing = append(missing, "--"+r)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return usageError("%s is required", missing[0])
	default:
		return usageError("%s and %s are required", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1])
	}
	switch {
	case len(pos) < c.minArgs || (c.maxArgs >= 0 && len(pos) > c.maxArgs):
		if c.maxArgs == 0 {
			return usageError("%s takes no argument, got %q", name, pos[0])
		}
		if c.args != "" {
			return usageError("%s: give %s", name, c.args)
		}
		return usageError("%s: wrong number of arguments", name)
	}
	err = run(e, pos)
	if e.srv != nil {
		// The event of an administrative change, with its outcome, then
		// the data directory closed.
		if aerr := recordAdmin(e, e.srv, path, fs, pos, err); aerr != nil {
			if err == nil {
				err = fmt.Errorf("the command was done, but its audit event could not be written: %w", aerr)
			}
		}
		if cerr := e.srv.Close(); cerr != nil && err == nil {
			err = cerr
		}
		e.srv = nil
	}
	return err
}

// parse parses flags placed anywhere among the positional arguments, which
// it returns ("dir show ADDRESS --data X" and "dir show --data X ADDRESS"
// both work). The flag package's errors are reworded with the double dash
// that the help shows.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError("%s", flagError(err))
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagError rewrites the flag package's messages ("flag provided but not
// defined: -x") as the command line spells flags.
func flagError(err error) string {
	s := err.Error()
	for _, p := range []struct{ from, to string }{
		{"flag provided but not defined: -", "unknown flag --"},
		{"flag needs an argument: -", "a value is needed after --"},
	} {
		if rest, ok := strings.CutPrefix(s, p.from); ok {
			return p.to + strings.TrimLeft(rest, "-")
		}
	}
	// invalid value "x" for flag -count: parse error
	if i := strings.Index(s, " for flag -"); i >= 0 {
		rest := s[i+len(" for flag -"):]
		name, why, _ := strings.Cut(rest, ": ")
		return fmt.Sprintf("%s for --%s (%s)", s[:i], strings.TrimLeft(name, "-"), why)
	}
	return s
}

// printHelp prints a command's help: usage, what it does, its subcommands
// and its flags, one line each with the default.
func printHelp(w io.Writer, c *command, path []string) {
	name := strings.Join(append([]string{"carepost"}, path...), " ")
	if len(path) == 0 {
		fmt.Fprintf(w, "carepost — secure health messaging server\n\nUsage:\n  carepost [--data DIR] [--config FILE] COMMAND [SUBCOMMAND] [ARGUMENTS] [FLAGS]\n\nCommands:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		listCommands(tw, c, nil)
		tw.Flush()
		fmt.Fprint(w, "\nGlobal flags, before or after the command:\n")
		fs := newFlagSet("carepost", &commonFlags{})
		printFlags(w, fs, nil)
		fmt.Fprint(w, "\nRun 'carepost COMMAND -h' (or 'carepost help COMMAND') for a command's flags.\n")
		return
	}
	if c.setup != nil {
		fmt.Fprintf(w, "Usage:\n  %s", name)
		if c.args != "" {
			fmt.Fprintf(w, " %s", c.args)
		}
		fmt.Fprint(w, " [FLAGS]\n")
	} else {
		fmt.Fprintf(w, "Usage:\n  %s SUBCOMMAND ...\n", name)
	}
	fmt.Fprintf(w, "\n%s\n", sentence(c.summary))
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.long, "\n"))
	}
	if len(c.subs) > 0 {
		fmt.Fprint(w, "\nSubcommands:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		listCommands(tw, c, path)
		tw.Flush()
		fmt.Fprintf(w, "\nRun '%s SUBCOMMAND -h' for a subcommand's flags.\n", name)
	}
	if c.setup != nil {
		fs := newFlagSet(name, &commonFlags{})
		c.setup(fs)
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs, c.required)
	}
}

// listCommands writes one line per leaf under c: its path, arguments and
// summary.
func listCommands(tw io.Writer, c *command, path []string) {
	for _, s := range c.subs {
		if s.hidden {
			continue
		}
		p := append(append([]string(nil), path...), s.name)
		if s.setup != nil {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.Join(p, " "), s.summary)
		}
		if len(s.subs) > 0 && len(path) < 2 {
			listCommands(tw, s, p)
		}
	}
}

// printFlags writes one line per flag: --name VALUE, what it does, its
// default, and (required) for those that must be given.
func printFlags(w io.Writer, fs *flag.FlagSet, required []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if value != "" {
			left += " " + value
		}
		line := usage
		for _, r := range required {
			if r == f.Name {
				line += " (required)"
			}
		}
		switch f.DefValue {
		case "", "0", "false", "0s", "[]":
		default:
			if !strings.Contains(usage, "default") {
				line += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, line)
	})
	tw.Flush()
}

// sentence capitalises a summary and ends it with a full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

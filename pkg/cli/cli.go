// Package cli holds what every binary of the project shares: flag parsing
// with the common vocabulary (see docs/cli.md), help text with an example
// pipeline, exit codes (0 ok, 1 runtime failure, 2 usage error), quiet
// handling of broken pipes, signal handling and a stderr progress line.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is a mistake in how the command was called (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Command describes one binary or subcommand.
type Command struct {
	Name    string // e.g. "rougefilter" or "tokenize train"
	Usage   string // e.g. "[flags] [FILE...]"
	Summary string // what it does, a few lines
	Example string // an example pipeline, shown by --help
	Flags   *flag.FlagSet
	aliases map[string]string // short -> long
}

// NewCommand makes a command with an empty flag set.
//
// It also makes a write to a closed pipe return EPIPE instead of killing the
// process with SIGPIPE, so that `cmd | head` ends quietly through Exit.
func NewCommand(name, usage, summary, example string) *Command {
	signal.Ignore(syscall.SIGPIPE)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Command{Name: name, Usage: usage, Summary: summary, Example: example, Flags: fs, aliases: map[string]string{}}
}

// Alias registers a short name for an existing long flag.
func (c *Command) Alias(short, long string) {
	f := c.Flags.Lookup(long)
	if f == nil {
		panic("cli: alias for unknown flag " + long)
	}
	c.Flags.Var(f.Value, short, f.Usage)
	c.aliases[short] = long
}

// Parse parses args, allowing flags and positional arguments to be mixed
// ("--" ends the flags). It returns the positional arguments, flag.ErrHelp
// for -h/--help, or a UsageError.
func (c *Command) Parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.Flags.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, &UsageError{Msg: err.Error()}
		}
		if err := c.checkFinite(); err != nil {
			return nil, err
		}
		rest := c.Flags.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag.Parse stops at the first non-flag or after "--".
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// checkFinite refuses NaN and infinite values of the float flags given:
// strconv accepts "NaN" and "Inf", and a NaN passes every range check
// written as "x < lo || x > hi".
func (c *Command) checkFinite() error {
	var bad error
	c.Flags.Visit(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || bad != nil {
			return
		}
		var x float64
		switch v := g.Get().(type) {
		case float64:
			x = v
		case float32:
			x = float64(v)
		default:
			return
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			bad = Usagef("--%s %v: want a finite number", f.Name, x)
		}
	})
	return bad
}

// Help writes the full help text.
func (c *Command) Help(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s\n\n", c.Name, c.Usage)
	if c.Summary != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.Summary))
	}
	if c.Example != "" {
		fmt.Fprintf(w, "Example:\n")
		for _, l := range strings.Split(strings.Trim(c.Example, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
		fmt.Fprintln(w)
	}
	shortOf := map[string]string{}
	for s, l := range c.aliases {
		shortOf[l] = s
	}
	var names []string
	c.Flags.VisitAll(func(f *flag.Flag) {
		if _, isAlias := c.aliases[f.Name]; !isAlias {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	if len(names) == 0 {
		return
	}
	fmt.Fprintf(w, "Flags:\n")
	for _, n := range names {
		f := c.Flags.Lookup(n)
		arg, usage := flag.UnquoteUsage(f)
		head := "--" + n
		if s, ok := shortOf[n]; ok {
			head = "-" + s + ", " + head
		}
		if arg != "" {
			head += " " + arg
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  %s\n      %s%s\n", head, strings.ReplaceAll(usage, "\n", "\n      "), def)
	}
}

// Common holds the flags shared by the stream stages.
type Common struct {
	Output   string
	Zstd     bool
	SkipBad  bool
	Workers  int
	Quiet    bool
	Progress bool
}

// Which common flags a command registers.
const (
	FlagOutput = 1 << iota
	FlagZstd
	FlagSkipBad
	FlagWorkers
	FlagProgress
	FlagsStream = FlagOutput | FlagZstd | FlagSkipBad | FlagWorkers | FlagProgress
)

// AddCommon registers the selected common flags into c.
func (c *Command) AddCommon(cm *Common, which int) {
	fs := c.Flags
	if which&FlagOutput != 0 {
		fs.StringVar(&cm.Output, "output", "", "write to `FILE` (atomically: temp name, then rename) instead of stdout")
		c.Alias("o", "output")
	}
	if which&FlagZstd != 0 {
		fs.BoolVar(&cm.Zstd, "zstd", false, "compress the output with zstd (implied by a .zst output name)")
	}
	if which&FlagSkipBad != 0 {
		fs.BoolVar(&cm.SkipBad, "skip-bad", false, "do not stop on a bad record: handle it as the command documents and count it in the summary")
	}
	if which&FlagWorkers != 0 {
		cm.Workers = runtime.NumCPU()
		fs.IntVar(&cm.Workers, "workers", cm.Workers, "parallel workers (`N`)")
		c.Alias("j", "workers")
	}
	if which&FlagProgress != 0 {
		fs.BoolVar(&cm.Quiet, "quiet", false, "no progress or summary on stderr")
		fs.BoolVar(&cm.Progress, "progress", false, "show progress even when stderr is not a terminal")
	}
}

// Main prints err the house way and returns the exit code: help goes to
// stdout with code 0, a usage error to stderr with code 2, a broken pipe ends
// quietly with 0, any other error prints "name: message" with code 1.
func (c *Command) Exit(err error, stdout, stderr io.Writer) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		c.Help(stdout)
		return ExitOK
	case xio.IsBrokenPipe(err):
		return ExitOK
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", c.Name, ue.Msg, c.Name)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %s\n", c.Name, oneLine(err.Error()))
	return ExitFailure
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}

// SignalContext is cancelled on SIGINT or SIGTERM. A second signal kills
// the process with the default behaviour.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			cancel()
			signal.Stop(ch)
		case <-ctx.Done():
			signal.Stop(ch)
		}
	}()
	return ctx, cancel
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Progress draws a one-line, rate-limited status on stderr.
type Progress struct {
	w       io.Writer
	on      bool
	drawn   bool
	last    time.Time
	started time.Time
	every   time.Duration
}

// NewProgress shows progress on w when forced, or when w is a terminal and
// quiet is off.
func NewProgress(w io.Writer, cm *Common) *Progress {
	on := cm.Progress || (!cm.Quiet && IsTerminal(w))
	every := 200 * time.Millisecond
	if !IsTerminal(w) {
		every = 2 * time.Second
	}
	return &Progress{w: w, on: on, started: time.Now(), every: every}
}

// Elapsed is the time since the progress was created.
func (p *Progress) Elapsed() time.Duration { return time.Since(p.started) }

// Update redraws the line unless it was drawn very recently.
func (p *Progress) Update(format string, args ...any) {
	if !p.on || time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	p.draw(fmt.Sprintf(format, args...))
}

func (p *Progress) draw(s string) {
	if IsTerminal(p.w) {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, s)
	}
}

// Done ends the progress line.
func (p *Progress) Done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

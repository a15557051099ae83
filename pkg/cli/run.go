package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
)

// MainFunc is the entry point of a command: its arguments and streams in,
// its exit code out.
type MainFunc func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

// DebugEnv names the environment variable that, set to a non-empty value,
// makes Run print the Go stack of an internal error after its one line.
const DebugEnv = "ALPACA_DEBUG"

// Run is what every cmd/*/main.go calls: it runs main with the process's
// arguments and streams and returns the exit code for os.Exit.
func Run(name string, main MainFunc) int {
	if path := os.Getenv(ProfileEnv); path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s: %v\n", name, ProfileEnv, err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s: %v\n", name, ProfileEnv, err)
		} else {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	return RunWith(name, main, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// ProfileEnv names a file to write a CPU profile of the whole run to (go
// tool pprof), for any binary.
const ProfileEnv = "ALPACA_CPUPROFILE"

// RunWith runs main and turns a panic on the calling goroutine into one
// line, "NAME: internal error: ...", and exit code 1 (a Go panic would
// print a stack trace and exit 2, which means "usage error" here). With
// $ALPACA_DEBUG set the stack follows the line.
func RunWith(name string, main MainFunc, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			report(stderr, name, r)
			code = ExitFailure
		}
	}()
	return main(args, stdin, stdout, stderr)
}

func report(stderr io.Writer, name string, r any) {
	fmt.Fprintf(stderr, "%s: internal error: %s\n", name, oneLine(fmt.Sprint(r)))
	if os.Getenv(DebugEnv) != "" {
		stderr.Write(debug.Stack())
	} else {
		fmt.Fprintf(stderr, "%s: (set %s=1 for the stack trace; please report it)\n", name, DebugEnv)
	}
}

// Guard, deferred first thing in a goroutine a command starts, gives a
// panic there what RunWith gives one in Main: "NAME: internal error: ..."
// on stderr (NAME from os.Args[0]) and exit code 1, instead of a stack
// trace and exit code 2. (A panic cannot be recovered from another
// goroutine; each worker needs its own Guard.)
func Guard() {
	if r := recover(); r != nil {
		report(os.Stderr, filepath.Base(os.Args[0]), r)
		os.Exit(ExitFailure)
	}
}

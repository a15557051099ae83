package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func newTestCommand() (*Command, *Common, *float64) {
	c := NewCommand("demo", "[flags] [FILE...]", "Does things.", "cat a | demo -o b")
	var cm Common
	c.AddCommon(&cm, FlagsStream)
	th := c.Flags.Float64("threshold", 0.7, "a threshold")
	return c, &cm, th
}

func TestParse(t *testing.T) {
	cases := []struct {
		args    []string
		pos     []string
		out     string
		th      float64
		workers int
		err     string
	}{
		{args: nil, pos: nil, th: 0.7},
		{args: []string{"a.jsonl", "--threshold", "0.5", "b.jsonl"}, pos: []string{"a.jsonl", "b.jsonl"}, th: 0.5},
		{args: []string{"-o", "x", "-", "-j", "3"}, pos: []string{"-"}, out: "x", th: 0.7, workers: 3},
		{args: []string{"--output=y", "--", "--threshold"}, pos: []string{"--threshold"}, out: "y", th: 0.7},
		{args: []string{"--nope"}, err: "flag provided but not defined: -nope"},
		{args: []string{"--threshold", "abc"}, err: "invalid value"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cmd, cm, th := newTestCommand()
			pos, err := cmd.Parse(c.args)
			if c.err != "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want usage error %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, c.pos) || cm.Output != c.out || *th != c.th {
				t.Fatalf("pos %q out %q th %v", pos, cm.Output, *th)
			}
			if c.workers != 0 && cm.Workers != c.workers {
				t.Fatalf("workers %d", cm.Workers)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	cmd, _, _ := newTestCommand()
	_, helpErr := cmd.Parse([]string{"--help"})
	cases := []struct {
		err    error
		code   int
		stdout string
		stderr string
	}{
		{nil, 0, "", ""},
		{helpErr, 0, "Example:\n  cat a | demo -o b", ""},
		{Usagef("need a file"), 2, "", "demo: need a file\nRun 'demo --help' for usage.\n"},
		{fmt.Errorf("write: %w", syscall.EPIPE), 0, "", ""},
		{errors.New("in.jsonl:3: record 3: bad\nthing"), 1, "", "demo: in.jsonl:3: record 3: bad thing\n"},
	}
	for _, c := range cases {
		var so, se bytes.Buffer
		code := cmd.Exit(c.err, &so, &se)
		if code != c.code || !strings.Contains(so.String(), c.stdout) || (c.stderr == "" && se.Len() > 0) || !strings.Contains(se.String(), c.stderr) {
			t.Errorf("Exit(%v) = %d, stdout %q, stderr %q", c.err, code, so.String(), se.String())
		}
	}
	if !errors.Is(helpErr, flag.ErrHelp) {
		t.Fatal("--help did not return flag.ErrHelp")
	}
}

func TestHelpListsFlags(t *testing.T) {
	cmd, _, _ := newTestCommand()
	var b bytes.Buffer
	cmd.Help(&b)
	for _, want := range []string{"Usage: demo [flags] [FILE...]", "-o, --output FILE", "-j, --workers N", "--threshold float", "(default 0.7)", "--skip-bad"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, b.String())
		}
	}
}

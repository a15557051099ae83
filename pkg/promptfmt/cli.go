// Package promptfmt is the promptfmt stage: instruction records in, the
// exact training text (prompt + completion) out; or prompts only for
// inference (--infer); or model outputs back into responses (--extract).
package promptfmt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/prompt"
)

const summary = `
Turns instruction records (JSONL or a JSON array with "instruction", an
optional "input" and "output") into the exact text a model is trained on:
one JSONL record {"prompt": ..., "completion": ...} per input record, in
order, with the "id" field (and any --keep field) passed through. The prompt
is the template's with-input form when the input is non-empty, its no-input
form otherwise (Alpaca's rule); the completion is the output unchanged: no
stripping, no added newline (tokenize adds EOS).

--infer writes prompts only, for feeding a model; records need no output.
A user query with no input gets the no-input prompt, as the Alpaca demo did.

--extract reads model outputs (--field, default "text"; a promptfmt record's
prompt+completion when that field is absent), cuts everything up to and
including the template's response_split, trims white space as Python's
str.strip() does, and writes the record back with the response in
--output-field. So "promptfmt | promptfmt --extract" gives back the outputs.

Templates: built-ins (--list-templates) or --template FILE, a JSON object
{"description", "prompt_input", "prompt_no_input", "response_split"} whose
prompts are Python str.format strings using {instruction} and {input}
("{{" and "}}" are literal braces); see docs/promptfmt.md.

Out of scope for now: multi-turn conversations and system-prompt formats.

Bad records (not an object, missing instruction, missing output without
--infer, a non-string field, invalid UTF-8) stop the run with the file, line
and record number; --skip-bad drops them and counts them instead.`

const example = `rougefilter generated.jsonl | promptfmt | tokenize --model tokenizer.model -o train.bin
promptfmt ../shared/data/alpaca_data.json -o prompts.jsonl.zst
promptfmt --infer --template vicuna questions.jsonl | generate ... | promptfmt --extract --template vicuna
promptfmt --list-templates`

// Options are the stage's settings.
type Options struct {
	cli.Common
	Template       string
	ListTemplates  bool
	PrintTemplate  bool
	InstructionKey string
	InputKey       string
	OutputKey      string
	Keep           []string
	Infer          bool
	Extract        bool
	Field          string
}

type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}
func (l listFlag) Set(s string) error {
	*l.v = append(*l.v, s)
	return nil
}

// Main runs promptfmt with args and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o Options
	cmd := cli.NewCommand("promptfmt", "[flags] [FILE...]", summary, example)
	cmd.AddCommon(&o.Common, cli.FlagsStream)
	fs := cmd.Flags
	fs.StringVar(&o.Template, "template", "alpaca", "built-in template `NAME` (see --list-templates) or a template JSON FILE")
	fs.BoolVar(&o.ListTemplates, "list-templates", false, "list the built-in templates and exit")
	fs.BoolVar(&o.PrintTemplate, "print-template", false, "print the selected template as JSON (a starting point for your own) and exit")
	fs.StringVar(&o.InstructionKey, "instruction-field", "instruction", "the input field `NAME` holding the instruction")
	fs.StringVar(&o.InputKey, "input-field", "input", "the input field `NAME` holding the optional input")
	fs.StringVar(&o.OutputKey, "output-field", "output", "the field `NAME` holding the output; with --extract, the field the response is written to")
	fs.Var(listFlag{&o.Keep}, "keep", "also pass this input `FIELD` through (repeatable; \"id\" is always kept; '*' keeps every field not consumed)")
	fs.BoolVar(&o.Infer, "infer", false, "write prompts only (no completion), for inference; records need no output")
	fs.BoolVar(&o.Extract, "extract", false, "read model outputs and cut them after the template's response_split")
	fs.StringVar(&o.Field, "field", "text", "with --extract: the field `NAME` holding the model output")
	files, err := cmd.Parse(args)
	if err == nil {
		err = run(&o, files, stdin, stdout, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

// LoadTemplate returns a built-in template by name, or reads a template
// JSON file. Errors are usage errors naming the problem.
func LoadTemplate(nameOrPath string) (*prompt.Template, error) {
	// A bare built-in name means the built-in; write ./NAME for a file of
	// that name.
	if t, ok := prompt.Builtin(nameOrPath); ok {
		return t, nil
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !strings.ContainsAny(nameOrPath, "/.") {
			return nil, cli.Usagef("--template %s: no such built-in template (known: %s) or file", nameOrPath, strings.Join(builtinNames(), ", "))
		}
		return nil, cli.Usagef("--template: %v", err)
	}
	t, err := prompt.Parse(nameOrPath, data)
	if err != nil {
		return nil, cli.Usagef("%v", err)
	}
	return t, nil
}

func builtinNames() []string {
	var names []string
	for _, t := range prompt.Builtins() {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return names
}

func run(o *Options, files []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.ListTemplates {
		for _, t := range prompt.Builtins() {
			fmt.Fprintf(stdout, "%-14s %s\n", t.Name, t.Description)
		}
		return nil
	}
	tpl, err := LoadTemplate(o.Template)
	if err != nil {
		return err
	}
	if o.PrintTemplate {
		b, _ := tpl.MarshalJSON()
		_, err := fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	if o.Infer && o.Extract {
		return cli.Usagef("--infer and --extract cannot be combined")
	}
	if o.Workers < 1 {
		return cli.Usagef("-j/--workers must be at least 1, got %d", o.Workers)
	}
	for _, k := range []struct{ flag, v string }{{"--instruction-field", o.InstructionKey}, {"--input-field", o.InputKey}, {"--output-field", o.OutputKey}, {"--field", o.Field}} {
		if k.v == "" {
			return cli.Usagef("%s must not be empty", k.flag)
		}
	}
	if !o.Extract && (o.InstructionKey == o.InputKey || o.InstructionKey == o.OutputKey || o.InputKey == o.OutputKey) {
		return cli.Usagef("--instruction-field, --input-field and --output-field must name different fields")
	}
	keep, keepAll, err := keepList(o)
	if err != nil {
		return err
	}
	if o.Extract && len(o.Keep) > 0 {
		return cli.Usagef("--keep has no effect with --extract (every field is kept)")
	}
	p := &processor{opts: o, tpl: tpl, keep: keep, keepAll: keepAll}
	return p.run(files, stdin, stdout, stderr)
}

func keepList(o *Options) (keep []string, all bool, err error) {
	seen := map[string]bool{}
	for _, k := range append([]string{"id"}, o.Keep...) {
		switch {
		case k == "*":
			all = true
			continue
		case k == "":
			return nil, false, cli.Usagef("--keep: empty field name")
		case k == "prompt" || k == "completion":
			return nil, false, cli.Usagef("--keep %s: that name is one of promptfmt's output fields", k)
		case k == o.InstructionKey || k == o.InputKey || (k == o.OutputKey && !o.Infer):
			if k == "id" {
				continue
			}
			return nil, false, cli.Usagef("--keep %s: that field is consumed to build the prompt", k)
		}
		if !seen[k] {
			seen[k] = true
			keep = append(keep, k)
		}
	}
	return keep, all, nil
}

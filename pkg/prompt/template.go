// Package prompt turns instruction records into the exact text a model is
// trained on, and a model's output back into a response.
//
// A Template has two forms: PromptInput, used when the record's input is
// non-empty, and PromptNoInput otherwise (the rule of Stanford Alpaca's
// train.py: input != ""). Both are Python str.format strings with the
// placeholders {instruction} and {input}; "{{" and "}}" are literal braces.
// ResponseSplit is the marker that ends the prompt: Extract cuts a model's
// output up to and including it.
//
// Templates are built in (Builtin, Builtins) or loaded from a small JSON
// file (Parse), the format used by alpaca-lora's templates directory:
//
//	{"description": "...", "prompt_input": "...", "prompt_no_input": "...", "response_split": "..."}
package prompt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// Placeholder indexes.
const (
	Instruction = 0
	Input       = 1
	litOnly     = -1
)

var placeholderNames = [...]string{Instruction: "instruction", Input: "input"}

// piece is a literal followed (unless ph == litOnly) by a placeholder.
type piece struct {
	lit     string // unescaped literal text
	litJSON []byte // lit escaped for a JSON string body
	ph      int
}

// form is one parsed prompt (with or without input).
type form struct {
	src    string
	pieces []piece
}

// Template is a validated prompt template.
type Template struct {
	Name          string
	Description   string
	PromptInput   string
	PromptNoInput string
	ResponseSplit string
	forms         [2]form // 0: no input, 1: with input
}

// Error is a problem with a template; Field names the template key
// ("prompt_input", ...) when known.
type Error struct {
	Template string
	Field    string
	Msg      string
}

func (e *Error) Error() string {
	switch {
	case e.Template != "" && e.Field != "":
		return fmt.Sprintf("template %s: %s: %s", e.Template, e.Field, e.Msg)
	case e.Template != "":
		return fmt.Sprintf("template %s: %s", e.Template, e.Msg)
	}
	return e.Msg
}

// New validates and returns a template. prompt_input must use {instruction}
// and {input}; prompt_no_input must use {instruction} and not {input} (it is
// only chosen when the input is empty); response_split must be non-empty and
// appear in both prompts after their last placeholder, so that Extract finds
// the end of the prompt.
func New(name, description, promptInput, promptNoInput, responseSplit string) (*Template, error) {
	t := &Template{Name: name, Description: description, PromptInput: promptInput,
		PromptNoInput: promptNoInput, ResponseSplit: responseSplit}
	fail := func(field, format string, args ...any) error {
		return &Error{Template: name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	for _, f := range []struct {
		key, src string
		idx      int
	}{{"prompt_input", promptInput, 1}, {"prompt_no_input", promptNoInput, 0}} {
		if !utf8.ValidString(f.src) {
			return nil, fail(f.key, "invalid UTF-8")
		}
		pieces, err := parseFormat(f.src)
		if err != nil {
			return nil, fail(f.key, "%v", err)
		}
		var used [2]bool
		for _, p := range pieces {
			if p.ph != litOnly {
				used[p.ph] = true
			}
		}
		if !used[Instruction] {
			return nil, fail(f.key, "missing placeholder {instruction}")
		}
		if f.idx == 1 && !used[Input] {
			return nil, fail(f.key, "missing placeholder {input}")
		}
		if f.idx == 0 && used[Input] {
			return nil, fail(f.key, "uses placeholder {input}, but this form is only chosen when the input is empty")
		}
		if responseSplit != "" && !strings.Contains(pieces[len(pieces)-1].lit, responseSplit) {
			return nil, fail(f.key, "response_split %q does not appear after the last placeholder", responseSplit)
		}
		t.forms[f.idx] = form{src: f.src, pieces: pieces}
	}
	if responseSplit == "" {
		return nil, fail("response_split", "missing or empty")
	}
	if !utf8.ValidString(responseSplit) || !utf8.ValidString(description) {
		return nil, fail("", "invalid UTF-8")
	}
	return t, nil
}

// parseFormat parses a Python str.format string restricted to the named
// placeholders {instruction} and {input}. The result always ends with a
// literal-only piece (possibly empty).
func parseFormat(s string) ([]piece, error) {
	var pieces []piece
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '{':
			if i+1 < len(s) && s[i+1] == '{' {
				lit.WriteByte('{')
				i++
				continue
			}
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] != '}' {
				return nil, fmt.Errorf("unclosed '{' at byte %d (write '{{' for a literal brace)", i)
			}
			name := s[i+1 : i+1+end]
			ph := -1
			for k, n := range placeholderNames {
				if name == n {
					ph = k
				}
			}
			if ph < 0 {
				switch {
				case name == "":
					return nil, fmt.Errorf("empty placeholder {} (only {instruction} and {input} are known)")
				case strings.ContainsAny(name, "!:.["):
					return nil, fmt.Errorf("placeholder {%s}: conversions, format specs, attributes and indexes are not supported", name)
				}
				return nil, fmt.Errorf("unknown placeholder {%s} (known: {instruction}, {input})", name)
			}
			pieces = append(pieces, newPiece(lit.String(), ph))
			lit.Reset()
			i += end + 1
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				lit.WriteByte('}')
				i++
				continue
			}
			return nil, fmt.Errorf("single '}' at byte %d (write '}}' for a literal brace)", i)
		default:
			lit.WriteByte(c)
		}
	}
	return append(pieces, newPiece(lit.String(), litOnly)), nil
}

func newPiece(lit string, ph int) piece {
	return piece{lit: lit, litJSON: AppendEscaped(nil, lit), ph: ph}
}

// Placeholders lists the placeholders a form uses, in order of appearance.
func (t *Template) Placeholders(withInput bool) []string {
	var out []string
	for _, p := range t.form(withInput).pieces {
		if p.ph != litOnly {
			out = append(out, placeholderNames[p.ph])
		}
	}
	return out
}

func (t *Template) form(withInput bool) *form {
	if withInput {
		return &t.forms[1]
	}
	return &t.forms[0]
}

// Render returns the prompt for a record: the with-input form when input is
// not empty, the no-input form otherwise.
func (t *Template) Render(instruction, input string) string {
	var b strings.Builder
	for _, p := range t.form(input != "").pieces {
		b.WriteString(p.lit)
		switch p.ph {
		case Instruction:
			b.WriteString(instruction)
		case Input:
			b.WriteString(input)
		}
	}
	return b.String()
}

// AppendJSON appends the prompt as the body of a JSON string literal
// (without the quotes). instruction and input are the bodies of JSON string
// literals as they appear in the input (already escaped): they are copied
// unchanged, so no decoding is needed. The with-input form is used when
// input is non-empty.
func (t *Template) AppendJSON(dst, instruction, input []byte) []byte {
	for _, p := range t.form(len(input) > 0).pieces {
		dst = append(dst, p.litJSON...)
		switch p.ph {
		case Instruction:
			dst = append(dst, instruction...)
		case Input:
			dst = append(dst, input...)
		}
	}
	return dst
}

// Extract returns the response in a model's output: everything after the
// first occurrence of ResponseSplit, with leading and trailing whitespace
// removed as Python's str.strip() does. ok is false when the split marker
// does not occur.
func (t *Template) Extract(text string) (response string, ok bool) {
	i := strings.Index(text, t.ResponseSplit)
	if i < 0 {
		return "", false
	}
	return PyStrip(text[i+len(t.ResponseSplit):]), true
}

// templateFile is the JSON form of a template.
type templateFile struct {
	Description   *string `json:"description"`
	PromptInput   *string `json:"prompt_input"`
	PromptNoInput *string `json:"prompt_no_input"`
	ResponseSplit *string `json:"response_split"`
}

// Parse reads a template from its JSON form. name is used in messages.
// Unknown keys, missing keys and non-string values are errors.
func Parse(name string, data []byte) (*Template, error) {
	if !utf8.Valid(data) {
		return nil, &Error{Template: name, Msg: "invalid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f templateFile
	if err := dec.Decode(&f); err != nil {
		msg := err.Error()
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			msg = fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			msg = fmt.Sprintf("%s must be a string, not a JSON %s", te.Field, te.Value)
		case err == io.EOF:
			msg = "empty file"
		case strings.HasPrefix(msg, "json: unknown field "):
			msg = "unknown key " + strings.TrimPrefix(msg, "json: unknown field ") +
				" (known: description, prompt_input, prompt_no_input, response_split)"
		default:
			msg = strings.TrimPrefix(msg, "json: ")
		}
		return nil, &Error{Template: name, Msg: msg}
	}
	if dec.More() {
		return nil, &Error{Template: name, Msg: "unexpected data after the JSON object"}
	}
	for _, k := range []struct {
		key string
		v   *string
	}{{"prompt_input", f.PromptInput}, {"prompt_no_input", f.PromptNoInput}, {"response_split", f.ResponseSplit}} {
		if k.v == nil {
			return nil, &Error{Template: name, Field: k.key, Msg: "missing"}
		}
	}
	desc := ""
	if f.Description != nil {
		desc = *f.Description
	}
	return New(name, desc, *f.PromptInput, *f.PromptNoInput, *f.ResponseSplit)
}

// MarshalJSON writes the template in the file format Parse reads.
func (t *Template) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(struct {
		Description   string `json:"description"`
		PromptInput   string `json:"prompt_input"`
		PromptNoInput string `json:"prompt_no_input"`
		ResponseSplit string `json:"response_split"`
	}{t.Description, t.PromptInput, t.PromptNoInput, t.ResponseSplit})
	return bytes.TrimRight(b.Bytes(), "\n"), err
}

// Builtin returns a built-in template by name.
func Builtin(name string) (*Template, bool) {
	t, ok := builtins[name]
	return t, ok
}

// Builtins lists the built-in templates sorted by name.
func Builtins() []*Template {
	out := make([]*Template, 0, len(builtins))
	for _, t := range builtins {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

package prompt

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// The two prompts of the Stanford Alpaca README (section "Data Release",
// github.com/tatsu-lab/stanford_alpaca), transcribed byte for byte: the
// README shows each inside a code block, one line per line below, with the
// placeholders {instruction}, {input} and {output} as written there.
const (
	readmeWithInput = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n" +
		"\n" +
		"### Instruction:\n" +
		"{instruction}\n" +
		"\n" +
		"### Input:\n" +
		"{input}\n" +
		"\n" +
		"### Response:\n" +
		"{output}"
	readmeNoInput = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n" +
		"\n" +
		"### Instruction:\n" +
		"{instruction}\n" +
		"\n" +
		"### Response:\n" +
		"{output}"
)

// layout renders a form with the placeholder names as values, followed by
// "{output}": the way the README writes a template.
func layout(t *Template, withInput bool) string {
	in := ""
	if withInput {
		in = "{input}"
	}
	return t.Render("{instruction}", in) + "{output}"
}

func TestAlpacaMatchesREADME(t *testing.T) {
	a, _ := Builtin("alpaca")
	if got := layout(a, true); got != readmeWithInput {
		t.Errorf("alpaca with input:\n%q\nwant\n%q", got, readmeWithInput)
	}
	if got := layout(a, false); got != readmeNoInput {
		t.Errorf("alpaca no input:\n%q\nwant\n%q", got, readmeNoInput)
	}
	// alpaca_legacy is train.py's PROMPT_DICT: the same text without the
	// newline that the README shows between "### Response:" and the output.
	l, _ := Builtin("alpaca_legacy")
	for _, in := range []bool{true, false} {
		want := strings.Replace(layout(a, in), "### Response:\n{output}", "### Response:{output}", 1)
		if got := layout(l, in); got != want {
			t.Errorf("alpaca_legacy (input %v) = %q, want %q", in, got, want)
		}
	}
}

// TestGolden holds every built-in template, both forms, byte for byte in
// testdata/golden/NAME.{input,no_input}.txt. Run with -update after a
// deliberate change and review the diff.
func TestGolden(t *testing.T) {
	names := map[string]bool{}
	for _, tp := range Builtins() {
		names[tp.Name] = true
		for _, withInput := range []bool{true, false} {
			file := tp.Name + ".no_input.txt"
			if withInput {
				file = tp.Name + ".input.txt"
			}
			path := filepath.Join("testdata", "golden", file)
			got := layout(tp, withInput)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file:\n got %q\nwant %q", file, got, want)
			}
		}
	}
	for _, n := range []string{"alpaca", "alpaca_legacy", "alpaca_short", "vicuna"} {
		if !names[n] {
			t.Errorf("built-in %s missing", n)
		}
	}
	// the golden files of alpaca are the README text itself
	for file, want := range map[string]string{"alpaca.input.txt": readmeWithInput, "alpaca.no_input.txt": readmeNoInput} {
		b, err := os.ReadFile(filepath.Join("testdata", "golden", file))
		if err == nil && string(b) != want {
			t.Errorf("%s is not the README prompt", file)
		}
	}
}

func TestRenderRule(t *testing.T) {
	a, _ := Builtin("alpaca")
	// Python: example.get("input", "") != "" -> a blank but non-empty input uses the input form
	if got := a.Render("Do it.", " "); !strings.Contains(got, "### Input:\n \n") {
		t.Errorf("whitespace input: %q", got)
	}
	// substituted text is not interpreted again (str.format_map semantics)
	got := a.Render("Use {input} and {{x}}.", "")
	if !strings.Contains(got, "### Instruction:\nUse {input} and {{x}}.\n\n### Response:\n") {
		t.Errorf("braces in values: %q", got)
	}
}

func TestAppendJSONMatchesRender(t *testing.T) {
	vals := []string{"", "plain", "quote\" back\\ nl\n tab\t", "é 中文 🙂 \u2028", "<a&b>", "{instruction}"}
	for _, tp := range Builtins() {
		for _, ins := range vals {
			for _, in := range vals {
				body := tp.AppendJSON(nil, AppendEscaped(nil, ins), AppendEscaped(nil, in))
				var s string
				if err := json.Unmarshal([]byte(`"`+string(body)+`"`), &s); err != nil {
					t.Fatalf("%s: invalid JSON %q: %v", tp.Name, body, err)
				}
				if want := tp.Render(ins, in); s != want {
					t.Fatalf("%s: AppendJSON %q != Render %q", tp.Name, s, want)
				}
			}
		}
	}
}

func TestExtract(t *testing.T) {
	a, _ := Builtin("alpaca")
	cases := []struct {
		text, want string
		ok         bool
	}{
		{a.Render("Say hi.", "") + "Hi!", "Hi!", true},
		{a.Render("Say hi.", "to Bob") + "  Hi Bob!\n\n", "Hi Bob!", true},
		{"### Response:", "", true},
		{"prefix ### Response:\x1f\u00a0 x \u3000\t", "x", true}, // Python's str.strip set
		{"no marker here", "", false},
		{"### Response: a ### Response: b", "a ### Response: b", true},
	}
	for _, c := range cases {
		got, ok := a.Extract(c.text)
		if got != c.want || ok != c.ok {
			t.Errorf("Extract(%q) = %q, %v; want %q, %v", c.text, got, ok, c.want, c.ok)
		}
	}
	v, _ := Builtin("vicuna")
	if got, _ := v.Extract(v.Render("Hello?", "") + "Hi there."); got != "Hi there." {
		t.Errorf("vicuna extract = %q", got)
	}
}

func TestPyStrip(t *testing.T) {
	// every code point Python 3 str.isspace() accepts (generated with
	// /usr/bin/python3 -c "print([hex(c) for c in range(0x110000) if chr(c).isspace()])")
	py := []rune{0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
		0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
		0x2028, 0x2029, 0x202f, 0x205f, 0x3000}
	want := map[rune]bool{}
	for _, r := range py {
		want[r] = true
	}
	for r := rune(0); r < 0x110000; r++ {
		if isPySpace(r) != want[r] {
			t.Fatalf("isPySpace(%U) = %v", r, isPySpace(r))
		}
	}
	if PyStrip("\u200b x \u200b") != "\u200b x \u200b" { // zero width space is not space
		t.Error("U+200B stripped")
	}
}

func TestTemplateErrors(t *testing.T) {
	ok := `"prompt_input": "I: {instruction}\nIn: {input}\nR:", "prompt_no_input": "I: {instruction}\nR:", "response_split": "R:"`
	if _, err := Parse("ok", []byte(`{"description": "d", `+ok+`}`)); err != nil {
		t.Fatalf("valid template: %v", err)
	}
	cases := []struct{ name, json, want string }{
		{"unknown placeholder", `{"prompt_input": "{instruction} {inptu} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, "prompt_input: unknown placeholder {inptu}"},
		{"missing input", `{"prompt_input": "{instruction} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, "prompt_input: missing placeholder {input}"},
		{"missing instruction", `{"prompt_input": "{input} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, "prompt_input: missing placeholder {instruction}"},
		{"missing instruction no input", `{"prompt_input": "{instruction}{input} R:", "prompt_no_input": "R:", "response_split": "R:"}`, "prompt_no_input: missing placeholder {instruction}"},
		{"input in no-input", `{"prompt_input": "{instruction}{input} R:", "prompt_no_input": "{instruction}{input} R:", "response_split": "R:"}`, "prompt_no_input: uses placeholder {input}"},
		{"positional", `{"prompt_input": "{} {instruction}{input} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, "empty placeholder {}"},
		{"format spec", `{"prompt_input": "{instruction!r}{input} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, "{instruction!r}: conversions"},
		{"unclosed", `{"prompt_input": "{instruction}{input} R: {", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, "unclosed '{' at byte 24"},
		{"single close", `{"prompt_input": "{instruction}}{input} R:", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, "single '}' at byte 13"},
		{"split missing", `{"prompt_input": "{instruction}{input}", "prompt_no_input": "{instruction} R:", "response_split": "R:"}`, `prompt_input: response_split "R:" does not appear after the last placeholder`},
		{"split empty", `{"prompt_input": "{instruction}{input}", "prompt_no_input": "{instruction}", "response_split": ""}`, "response_split: missing or empty"},
		{"no split key", `{"prompt_input": "{instruction}{input}", "prompt_no_input": "{instruction}"}`, "response_split: missing"},
		{"no prompt key", `{"prompt_no_input": "{instruction}", "response_split": "x"}`, "prompt_input: missing"},
		{"unknown key", `{"prompt": "x", ` + ok + `}`, `unknown key "prompt"`},
		{"not string", `{"prompt_input": 3, "prompt_no_input": "{instruction}", "response_split": "x"}`, "prompt_input must be a string, not a JSON number"},
		{"bad json", `{"prompt_input": "x",}`, "invalid JSON at byte"},
		{"empty", ``, "empty file"},
		{"trailing", `{` + ok + `} {}`, "unexpected data after"},
		{"bad utf8", "{\"description\": \"\xff\", " + ok + "}", "invalid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("my.json", []byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			var te *Error
			if !errors.As(err, &te) || !strings.HasPrefix(err.Error(), "template my.json: ") {
				t.Fatalf("error %q is not a *prompt.Error naming the template", err)
			}
		})
	}
}

func TestBraceEscapes(t *testing.T) {
	tp, err := New("b", "", "{{json}}: {instruction} / {input} }}R:", "{{{instruction}}} R:", "R:")
	if err != nil {
		t.Fatal(err)
	}
	if got := tp.Render("a", "b"); got != "{json}: a / b }R:" {
		t.Errorf("with input: %q", got)
	}
	if got := tp.Render("a", ""); got != "{a} R:" {
		t.Errorf("no input: %q", got)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, tp := range Builtins() {
		b, err := tp.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(tp.Name, b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tp.Name, err, b)
		}
		if back.PromptInput != tp.PromptInput || back.PromptNoInput != tp.PromptNoInput ||
			back.ResponseSplit != tp.ResponseSplit || back.Description != tp.Description {
			t.Fatalf("%s: round trip changed the template", tp.Name)
		}
	}
}

func TestCheckBody(t *testing.T) {
	good := []string{``, `abc`, `\ud83d\ude00`, `\\ud800`, `\u00e9\n`, "é", `\uD83D\uDE00x`}
	bad := []string{"\xff", `\ud800`, `\udc00`, `\ud800\u0041`, `x\ud83d`, "a\xc3"}
	for _, s := range good {
		if err := CheckBody([]byte(s)); err != nil {
			t.Errorf("CheckBody(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := CheckBody([]byte(s)); err == nil {
			t.Errorf("CheckBody(%q) accepted", s)
		}
	}
}

func TestAppendEscapedMatchesJSON(t *testing.T) {
	for _, s := range []string{"", "a\"b\\c\n\r\t\x00\x1f\x7f", "<&>", "\u2028\u2029é", "bad\xff"} {
		var back string
		if err := json.Unmarshal([]byte(`"`+string(AppendEscaped(nil, s))+`"`), &back); err != nil {
			t.Fatal(err)
		}
		if back != strings.ToValidUTF8(s, "\ufffd") {
			t.Errorf("%q -> %q", s, back)
		}
	}
}

// FuzzParse: any template text either parses into a template whose Render
// agrees with a plain reimplementation of Python's str.format on the two
// names, or gives a one-line *Error; never a panic.
func FuzzParse(f *testing.F) {
	for _, tp := range Builtins() {
		f.Add(tp.PromptInput, tp.PromptNoInput, tp.ResponseSplit)
	}
	f.Add("{{}}{instruction}{input}x", "{instruction}x", "x")
	f.Add("{", "}", "")
	f.Add("{instruction:>3}{input}", "{0}", "a")
	f.Fuzz(func(t *testing.T, in, noIn, split string) {
		tp, err := New("fuzz", "", in, noIn, split)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || strings.Contains(err.Error(), "\n") && !strings.Contains(in+noIn+split, "\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		for _, v := range [][2]string{{"I", "N"}, {"{x}", ""}, {"a\"\\\n", "é"}} {
			got := tp.Render(v[0], v[1])
			src := noIn
			if v[1] != "" {
				src = in
			}
			want := pyFormat(src, v[0], v[1])
			if got != want {
				t.Fatalf("Render(%q) of %q = %q, want %q", v, src, got, want)
			}
			body := tp.AppendJSON(nil, AppendEscaped(nil, v[0]), AppendEscaped(nil, v[1]))
			var s string
			if err := json.Unmarshal([]byte(`"`+string(body)+`"`), &s); err != nil || s != got {
				t.Fatalf("AppendJSON = %q (%v), want %q", body, err, got)
			}
			if r, ok := tp.Extract(got + "out"); !ok || !strings.HasSuffix(r, "out") && utf8.ValidString(got) {
				t.Fatalf("Extract lost the response: %q %v", r, ok)
			}
		}
	})
}

// pyFormat is a naive str.format for the two names (replace after
// splitting on the escapes), independent of parseFormat.
func pyFormat(s, instruction, input string) string {
	var out bytes.Buffer
	for len(s) > 0 {
		switch {
		case strings.HasPrefix(s, "{{"):
			out.WriteByte('{')
			s = s[2:]
		case strings.HasPrefix(s, "}}"):
			out.WriteByte('}')
			s = s[2:]
		case strings.HasPrefix(s, "{instruction}"):
			out.WriteString(instruction)
			s = s[len("{instruction}"):]
		case strings.HasPrefix(s, "{input}"):
			out.WriteString(input)
			s = s[len("{input}"):]
		default:
			out.WriteByte(s[0])
			s = s[1:]
		}
	}
	return out.String()
}

// FuzzUnescape: AppendUnescaped decodes like encoding/json for every valid
// string literal.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`"a\nb"`, `"\ud83d\ude00 \u00e9 \/ \\ \""`, `"\ud800"`, `"x\u0000\b\f\r\t"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		var want string
		if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' || !utf8.ValidString(lit) || json.Unmarshal([]byte(lit), &want) != nil {
			return
		}
		if got := string(AppendUnescaped(nil, []byte(lit[1:len(lit)-1]))); got != want {
			t.Fatalf("AppendUnescaped(%s) = %q, want %q", lit, got, want)
		}
	})
}

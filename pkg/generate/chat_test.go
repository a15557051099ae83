package generate

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func TestChatPipe(t *testing.T) {
	dir := tinyModel(t)
	var o, e bytes.Buffer
	in := "Name three colors.\n\n/reset\nWhat is 2+2?\n/quit\nnot read\n"
	code := Main([]string{"chat", "--model", dir, "--temperature", "0", "--max-new-tokens", "5"}, strings.NewReader(in), &o, &e)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	m := loadTiny(t)
	var want strings.Builder
	for _, q := range []string{"Name three colors.", "What is 2+2?"} { // /reset: each is a first turn
		res := m.Generate(&Request{Prompt: m.EncodePrompt(m.renderAlpaca(q, "")), MaxNewTokens: 5, Sample: DefaultSampleParams()})
		want.WriteString(res.Text + "\n")
	}
	if o.String() != want.String() {
		t.Errorf("chat printed %q, want %q", o.String(), want.String())
	}
}

// TestChatInterrupt: an interrupt during an answer stops that answer and
// the conversation goes on.
func TestChatInterrupt(t *testing.T) {
	m := loadTiny(t)
	m.EOS = -1 // answers always run to max-new-tokens unless interrupted
	tmpl, _ := builtinTemplate("alpaca")
	sig := make(chan os.Signal, 1)
	var out, log bytes.Buffer
	w := &signalWriter{w: &out, sig: sig, after: 1}
	c := &chat{m: m, tmpl: tmpl, sp: DefaultSampleParams(), maxNew: 40, out: w, prompt: &log}
	if err := c.run(strings.NewReader("first question\nsecond question\n"), sig); err != nil {
		t.Fatal(err)
	}
	if len(c.history) != 2 {
		t.Fatalf("%d turns", len(c.history))
	}
	if !strings.Contains(log.String(), "[stopped]") {
		t.Errorf("no [stopped] notice: %q", log.String())
	}
	first := m.Generate(&Request{Prompt: m.EncodePrompt(tmpl.Render("first question", "")), MaxNewTokens: 40, Sample: DefaultSampleParams()})
	if got := c.history[0].answer; len(got) >= len(strings.TrimSpace(first.Text)) || !strings.HasPrefix(strings.TrimSpace(first.Text), got) {
		t.Errorf("interrupted answer %q is not a proper prefix of %q", got, first.Text)
	}
	if len(c.history[1].answer) == 0 {
		t.Error("the second answer is empty")
	}
}

// signalWriter sends an interrupt after `after` writes.
type signalWriter struct {
	w     io.Writer
	sig   chan os.Signal
	after int
	n     int
}

func (s *signalWriter) Write(p []byte) (int, error) {
	s.n++
	if s.n == s.after {
		s.sig <- os.Interrupt
	}
	return s.w.Write(p)
}

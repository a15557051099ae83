package generate

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
)

func TestDetokStreams(t *testing.T) {
	tok, err := sentencepiece.Load(smallTok)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		"Hello world, how are you?",
		"Ünïcödé naïve café — 東京 🚀🚀 end",
		"  two  spaces\nand a new line",
	} {
		ids := tok.Encode(text)
		bytePieces := 0
		for _, id := range ids {
			if tok.Pieces[id].Type == sentencepiece.Byte {
				bytePieces++
			}
		}
		if strings.ContainsRune(text, '🚀') && bytePieces == 0 {
			t.Fatalf("%q: no byte pieces; the test needs byte fallback", text)
		}
		d := newDetok(tok, nil)
		var sb strings.Builder
		for _, id := range ids {
			delta, stop := d.push(id)
			if stop {
				t.Fatalf("%q: stop without stop strings", text)
			}
			if !utf8.ValidString(delta) || strings.ContainsRune(delta, utf8.RuneError) {
				t.Errorf("%q: delta %q is not complete UTF-8", text, delta)
			}
			sb.WriteString(delta)
		}
		sb.WriteString(d.finish())
		want, _ := tok.Decode(ids)
		if sb.String() != want {
			t.Errorf("streamed %q, Decode gives %q", sb.String(), want)
		}
	}
}

func TestDetokStop(t *testing.T) {
	tok, err := sentencepiece.Load(smallTok)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("The answer is 42.\n### Instruction: more text")
	for _, stops := range [][]string{{"###"}, {"\n###", "zzz"}, {"### Instruction:"}} {
		d := newDetok(tok, stops)
		var sb strings.Builder
		stopped := false
		for _, id := range ids {
			delta, stop := d.push(id)
			sb.WriteString(delta)
			if strings.Contains(sb.String(), "#") {
				t.Fatalf("%v: released %q, part of a stop string", stops, sb.String())
			}
			if stop {
				stopped = true
				break
			}
		}
		if !stopped {
			t.Fatalf("%v: no stop", stops)
		}
		if got := sb.String(); got != "The answer is 42." && got != "The answer is 42.\n" {
			t.Errorf("%v: text %q", stops, got)
		}
	}
	// no stop: a prefix of a stop string held back comes out at the end
	d := newDetok(tok, []string{"42!"})
	var sb strings.Builder
	for _, id := range tok.Encode("up to 42") {
		delta, _ := d.push(id)
		sb.WriteString(delta)
	}
	if strings.HasSuffix(sb.String(), "42") {
		t.Errorf("released %q before knowing whether 42! follows", sb.String())
	}
	sb.WriteString(d.finish())
	if sb.String() != "up to 42" {
		t.Errorf("final text %q", sb.String())
	}
}

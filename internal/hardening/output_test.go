package hardening

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alpaca-go/alpaca/pkg/promptfmt"
	"github.com/alpaca-go/alpaca/pkg/rougefilter"
	"github.com/alpaca-go/alpaca/pkg/tokenize"
	"github.com/alpaca-go/alpaca/pkg/train"
)

const records = `{"instruction":"Write a haiku about autumn leaves.","input":"","output":"Red leaves drift and fall"}
{"instruction":"Write a haiku about autumn leaves!","input":"","output":"Red leaves drift"}
{"instruction":"List three prime numbers.","input":"","output":"2, 3, 5"}
{"instruction":"Translate to French.","input":"good morning","output":"bonjour"}
`

type command struct {
	name string
	run  func(out string) (code int, stderr string)
}

func main(f func([]string, io.Reader, io.Writer, io.Writer) int, stdin string, args ...string) (int, string) {
	var o, e bytes.Buffer
	code := f(args, strings.NewReader(stdin), &o, &e)
	return code, e.String()
}

// commands are the atomic -o outputs of the binaries, each writing to out.
func commands(t *testing.T) []command {
	dir := t.TempDir()
	// A small tokenizer, trained here (tokenize train is one of the outputs).
	var corpus strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&corpus, "{\"text\":\"Write a haiku about autumn leaves number %d and list three prime numbers in French.\"}\n", i)
	}
	cp := filepath.Join(dir, "corpus.jsonl")
	os.WriteFile(cp, []byte(corpus.String()), 0o644)
	tok := filepath.Join(dir, "tok.model")
	if code, e := main(tokenize.Main, "", "train", "--quiet", "--vocab-size", "320", "--input", cp, "-o", tok); code != 0 {
		t.Fatalf("tokenize train: %s", e)
	}
	var prompts bytes.Buffer
	if code := promptfmt.Main(nil, strings.NewReader(records), &prompts, io.Discard); code != 0 {
		t.Fatal("promptfmt")
	}
	metrics := filepath.Join(dir, "m.jsonl")
	os.WriteFile(metrics, []byte(`{"step":1,"epoch":0.5,"loss":2.5,"lr":0.001}`+"\n"+`{"step":2,"epoch":1,"loss":2.1,"lr":0.001}`+"\n"), 0o644)
	return []command{
		{"promptfmt", func(out string) (int, string) { return main(promptfmt.Main, records, "-o", out) }},
		{"rougefilter", func(out string) (int, string) { return main(rougefilter.Main, records, "-o", out) }},
		{"rougefilter --rejected", func(out string) (int, string) {
			return main(rougefilter.Main, records, "-o", os.DevNull, "--rejected", out)
		}},
		{"tokenize", func(out string) (int, string) {
			return main(tokenize.Main, prompts.String(), "--model", tok, "--quiet", "-o", out)
		}},
		{"tokenize encode", func(out string) (int, string) {
			return main(tokenize.Main, `{"text":"autumn leaves"}`+"\n", "encode", "--model", tok, "--field", "text", "-o", out)
		}},
		{"tokenize decode", func(out string) (int, string) {
			return main(tokenize.Main, "260 270 280\n", "decode", "--model", tok, "-o", out)
		}},
		{"tokenize train", func(out string) (int, string) {
			return main(tokenize.Main, "", "train", "--quiet", "--vocab-size", "320", "--input", cp, "-o", out)
		}},
		{"trainer plot", func(out string) (int, string) {
			return main(train.Main, "", "plot", "--metrics", metrics, "-o", out)
		}},
	}
}

// Every atomic -o follows the usual conventions: a symlink's target is
// replaced and the link stays; a device (/dev/null, and a link to it) and
// a FIFO are written through and stay what they are. (They were replaced
// by a regular file: trainer plot -o /dev/full replaced the system's
// /dev/full when run as root.)
func TestOutputsRespectLinksDevicesFIFOs(t *testing.T) {
	devNull, err := os.Stat(os.DevNull)
	if err != nil || devNull.Mode()&os.ModeCharDevice == 0 {
		t.Skip("no /dev/null")
	}
	for _, c := range commands(t) {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			// A symlink to a file in another directory.
			os.Mkdir(filepath.Join(d, "real"), 0o755)
			target := filepath.Join(d, "real", "out")
			os.WriteFile(target, []byte("old"), 0o644)
			link := filepath.Join(d, "link")
			os.Symlink(filepath.Join("real", "out"), link)
			if code, e := c.run(link); code != 0 {
				t.Fatalf("symlink: exit %d: %s", code, e)
			}
			if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatal("the symlink was replaced")
			}
			if b, _ := os.ReadFile(target); len(b) == 0 || string(b) == "old" {
				t.Fatalf("the link's target was not written (%q)", b)
			}
			// /dev/null, directly and through a link.
			nullLink := filepath.Join(d, "null")
			os.Symlink(os.DevNull, nullLink)
			for _, p := range []string{os.DevNull, nullLink} {
				if code, e := c.run(p); code != 0 {
					t.Fatalf("%s: exit %d: %s", p, code, e)
				}
			}
			if fi, err := os.Stat(os.DevNull); err != nil || !os.SameFile(fi, devNull) {
				t.Fatal("/dev/null was replaced")
			}
			// A FIFO with a reader.
			fifo := filepath.Join(d, "fifo")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			got := make(chan int, 1)
			go func() {
				f, err := os.Open(fifo)
				if err != nil {
					got <- -1
					return
				}
				b, _ := io.ReadAll(f)
				f.Close()
				got <- len(b)
			}()
			if code, e := c.run(fifo); code != 0 {
				t.Fatalf("fifo: exit %d: %s", code, e)
			}
			select {
			case n := <-got:
				if n <= 0 {
					t.Fatalf("the FIFO's reader got %d bytes", n)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the FIFO's reader got nothing")
			}
			if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
				t.Fatal("the FIFO was replaced")
			}
			ents, _ := os.ReadDir(d)
			if len(ents) != 4 { // real, link, null, fifo: no temporary files left
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("directory holds %v", names)
			}
		})
	}
}

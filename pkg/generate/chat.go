package generate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/prompt"
	"github.com/alpaca-go/alpaca/pkg/promptfmt"
)

const chatSummary = `A conversation with the model on the terminal (or through a pipe): each
line read is an instruction, formatted with --template (Alpaca by
default) after the earlier turns, and the answer is printed as it is
generated. Ctrl-C stops the answer being written, not the program;
Ctrl-C at the prompt, Ctrl-D or /quit ends. /reset forgets the earlier
turns. Earlier turns are dropped, oldest first, when they no longer fit
in the model's context.`

const chatExample = `generate chat --model tuned
printf 'Name three primary colors.\n' | generate chat --model tuned --temperature 0`

// ChatMain runs `generate chat`.
func ChatMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := cli.NewCommand("generate chat", "--model DIR [flags]", chatSummary, chatExample)
	fs := c.Flags
	var mf modelFlags
	var sf sampleFlags
	mf.add(fs)
	sf.add(fs, 0.7, 512)
	tmplName := fs.String("template", "alpaca", "prompt template: built-in `NAME` or JSON FILE")
	err := func() error {
		if _, err := c.Parse(args); err != nil {
			return err
		}
		sp, err := sf.params()
		if err != nil {
			return err
		}
		tmpl, err := promptfmt.LoadTemplate(*tmplName)
		if err != nil {
			return err
		}
		m, err := mf.load()
		if err != nil {
			return err
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		defer signal.Stop(sig)
		ch := &chat{m: m, tmpl: tmpl, sp: sp, maxNew: sf.maxNew, stops: sf.stops, out: stdout, prompt: stderr, interactive: isTerminal(stdin)}
		return ch.run(stdin, sig)
	}()
	return c.Exit(err, stdout, stderr)
}

type turn struct{ instruction, answer string }

type chat struct {
	m           *Model
	tmpl        *prompt.Template
	sp          SampleParams
	maxNew      int
	stops       []string
	out         io.Writer
	prompt      io.Writer
	interactive bool
	history     []turn
	turns       int
}

// promptFor renders the conversation: earlier turns as complete Alpaca
// examples separated by a blank line, then the new instruction. Oldest
// turns are dropped while the prompt leaves less than maxNew tokens.
func (c *chat) promptFor(instruction string) []int32 {
	for {
		var sb strings.Builder
		for _, t := range c.history {
			sb.WriteString(c.tmpl.Render(t.instruction, ""))
			sb.WriteString(t.answer)
			sb.WriteString("\n\n")
		}
		sb.WriteString(c.tmpl.Render(instruction, ""))
		ids := c.m.EncodePrompt(sb.String())
		if len(c.history) == 0 || len(ids)+min(c.maxNew, c.m.MaxLen/2) <= c.m.MaxLen {
			if len(ids) >= c.m.MaxLen { // keep the end of an over-long instruction
				keep := c.m.MaxLen / 2
				ids = append([]int32{ids[0]}, ids[len(ids)-keep+1:]...)
			}
			return ids
		}
		c.history = c.history[1:]
	}
}

func (c *chat) run(in io.Reader, sig <-chan os.Signal) error {
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
		close(lines)
	}()
	for {
		if c.interactive {
			fmt.Fprint(c.prompt, "> ")
		}
		var line string
		select {
		case l, ok := <-lines:
			if !ok {
				if c.interactive {
					fmt.Fprintln(c.prompt)
				}
				return <-readErr
			}
			line = l
		case <-sig:
			fmt.Fprintln(c.prompt)
			return nil
		}
		line = strings.TrimSpace(line)
		switch line {
		case "":
			continue
		case "/quit", "/exit":
			return nil
		case "/reset":
			c.history = nil
			continue
		}
		if err := c.answer(line, sig); err != nil {
			return err
		}
	}
}

// answer streams the model's answer to one instruction; a signal on sig
// stops it.
func (c *chat) answer(instruction string, sig <-chan os.Signal) error {
	// The engine polls ctx.Err() at every step, on this goroutine: polling
	// the signal there sees an interrupt at the next step for sure (a
	// watcher goroutine would be scheduled whenever the runtime gets to it).
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := sigCtx{parent, cancel, sig}
	var werr error
	sp := c.sp
	sp.Seed = c.sp.Seed + uint64(c.turns)
	c.turns++
	req := &Request{Prompt: c.promptFor(instruction), MaxNewTokens: c.maxNew, Stop: c.stops, Sample: sp, Ctx: ctx,
		OnText: func(s string) {
			select { // an interrupt is also seen here, synchronously
			case <-sig:
				cancel()
			default:
			}
			if werr == nil {
				_, werr = io.WriteString(c.out, s)
			}
		}}
	res := c.m.Generate(req)
	if werr != nil {
		return werr
	}
	if _, err := io.WriteString(c.out, "\n"); err != nil {
		return err
	}
	if res.Err != nil && ctx.Err() == nil {
		return res.Err
	}
	if res.Err != nil {
		fmt.Fprintln(c.prompt, "[stopped]")
	}
	c.history = append(c.history, turn{instruction, strings.TrimSpace(res.Text)})
	return nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// sigCtx is a cancelable context whose Err first polls sig (without
// blocking) and cancels on an interrupt.
type sigCtx struct {
	context.Context
	cancel context.CancelFunc
	sig    <-chan os.Signal
}

func (c sigCtx) Err() error {
	select {
	case <-c.sig:
		c.cancel()
	default:
	}
	return c.Context.Err()
}

package generate

import (
	"fmt"
	"io"
	"time"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/promptfmt"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const serveSummary = `Serves the model over HTTP with OpenAI's API: GET /v1/models, POST
/v1/completions and /v1/chat/completions (stream: true sends server-sent
events). Requests decode together, up to --batch at a time; up to --queue
more wait, beyond that the answer is 429. Chat messages are rendered with
--template (Alpaca by default). Limits: --max-body bytes per request (413),
max_tokens up to --max-tokens, prompts shorter than the model's context
(400 context_length_exceeded). A client that disconnects cancels its work.
SIGINT/SIGTERM stop accepting connections and let requests in flight
finish (up to --grace). Any model name is accepted in requests.`

const serveExample = `generate serve --model tuned --addr 127.0.0.1:8080
seedgen --base-url http://127.0.0.1:8080/v1 --model tuned --seeds seeds.jsonl -n 20`

// ServeMain runs `generate serve`.
func ServeMain(args []string, stdout, stderr io.Writer) int {
	c := cli.NewCommand("generate serve", "--model DIR [flags]", serveSummary, serveExample)
	fs := c.Flags
	var mf modelFlags
	mf.add(fs)
	addr := fs.String("addr", "127.0.0.1:8080", "listen on `HOST:PORT`")
	batch := fs.Int("batch", 4, "requests decoded together (`N`)")
	queue := fs.Int("queue", 16, "requests waiting beyond --batch before 429 (`N`)")
	maxTok := fs.Int("max-tokens", 2048, "largest max_tokens a request may ask (`N`)")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body in `BYTES`")
	seed := fs.Uint64("seed", 1, "base `SEED` of requests without a seed")
	grace := fs.Duration("grace", 30*time.Second, "how long `D` shutdown waits for requests in flight")
	tmplName := fs.String("template", "alpaca", "template for chat messages: built-in `NAME` or JSON FILE")
	quiet := fs.Bool("quiet", false, "no log on stderr")
	addrFile := fs.String("addr-file", "", "write the address listened on to `FILE` once ready (for --addr 127.0.0.1:0)")
	err := func() error {
		if _, err := c.Parse(args); err != nil {
			return err
		}
		if *batch <= 0 || *queue <= 0 || *maxTok <= 0 || *maxBody <= 0 {
			return cli.Usagef("--batch, --queue, --max-tokens and --max-body must be positive")
		}
		tmpl, err := promptfmt.LoadTemplate(*tmplName)
		if err != nil {
			return err
		}
		m, err := mf.load()
		if err != nil {
			return err
		}
		logf := func(format string, args ...any) {
			if !*quiet {
				fmt.Fprintf(stderr, "generate serve: "+format+"\n", args...)
			}
		}
		s := NewServer(m, ServerConfig{MaxBatch: *batch, MaxQueue: *queue, MaxTokens: *maxTok, MaxBodyBytes: *maxBody,
			Seed: *seed, Template: tmpl, Logf: logf})
		ctx, cancel := cli.SignalContext()
		defer cancel()
		var ferr error
		err = s.ListenAndServe(ctx, *addr, *grace, func(a interface{ String() string }) {
			logf("model %s (context %d) on http://%s/v1", s.cfg.ModelID, m.MaxLen, a)
			if *addrFile != "" {
				if ferr = xio.AtomicWriteFile(*addrFile, []byte(a.String()+"\n")); ferr != nil {
					cancel()
				}
			}
		})
		if err == nil {
			err = ferr
		}
		logf("stopped")
		return err
	}()
	return c.Exit(err, stdout, stderr)
}

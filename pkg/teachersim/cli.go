package teachersim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const example = `teachersim --pool testdata/teachersim/pool.jsonl --addr 127.0.0.1:0 --addr-file /tmp/sim.addr &
seedgen --base-url "http://$(cat /tmp/sim.addr)/v1" --seeds testdata/seedgen/seeds.jsonl -o gen.jsonl
teachersim --pool ../shared/data/alpaca_data.json --error-rate 0.1 --drop-rate 0.02 --latency 200ms`

// Main runs the teachersim command.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("teachersim", "[flags]",
		`An OpenAI-compatible teacher for tests, demos and benchmarks: answers
/v1/completions and /v1/chat/completions with numbered instruction lists
drawn from --pool (JSONL or JSON array of instruction/input/output records,
or self-instruct seed tasks), honouring stop, max_tokens and n. The same
prompt always gets the same answer (unless --sequential). Faults can be
injected. Listens on 127.0.0.1 by default; stops on SIGINT/SIGTERM and
prints what it served on stderr.`, example)
	fs := cmd.Flags
	var cfg Config
	var addr, addrFile, pool, keyFile string
	var quiet bool
	fs.StringVar(&addr, "addr", "127.0.0.1:8089", "listen on `HOST:PORT` (port 0 picks a free one)")
	fs.StringVar(&addrFile, "addr-file", "", "write the address actually listened on to `FILE` once ready")
	fs.StringVar(&pool, "pool", "", "instruction/input/output records to answer with (`FILE`, required)")
	fs.StringVar(&cfg.Model, "model", "teachersim", "model `NAME` reported in answers")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random `N` for answers and faults")
	fs.BoolVar(&cfg.Sequential, "sequential", false, "serve the pool in a seeded random order, each record once per pass (answers then depend on request order)")
	fs.IntVar(&cfg.MaxTasks, "max-tasks", 20, "number the list up to `N`")
	fs.DurationVar(&cfg.Latency, "latency", 0, "delay every answer by `D` (plus up to 50% random)")
	fs.Float64Var(&cfg.ErrorRate, "error-rate", 0, "fraction `P` of requests failing, half 429 with Retry-After, half 500")
	fs.DurationVar(&cfg.RetryAfter, "retry-after", time.Second, "Retry-After `D` sent with 429 (also as retry-after-ms)")
	fs.Float64Var(&cfg.DropRate, "drop-rate", 0, "fraction `P` of connections closed without an answer")
	fs.Float64Var(&cfg.MalformedRate, "malformed-rate", 0, "fraction `P` of answers whose body is not JSON")
	fs.Float64Var(&cfg.TruncateRate, "truncate-rate", 0, "fraction `P` of answers cut in the middle of the body")
	fs.Float64Var(&cfg.BadBlockRate, "bad-block-rate", 0, "fraction `P` of tasks written without their output part")
	fs.IntVar(&cfg.ContextLength, "context-length", 0, "reject prompt+max_tokens above `N` tokens with context_length_exceeded (0: no limit)")
	fs.StringVar(&keyFile, "api-key-file", "", "require the bearer key stored in `FILE`")
	fs.BoolVar(&quiet, "quiet", false, "print nothing on stderr")
	_, err := cmd.Parse(args)
	if err == nil {
		err = run(cmd, &cfg, addr, addrFile, pool, keyFile, quiet, stderr)
	}
	return cmd.Exit(err, stdout, stderr)
}

func run(cmd *cli.Command, cfg *Config, addr, addrFile, pool, keyFile string, quiet bool, stderr io.Writer) error {
	if pool == "" {
		return cli.Usagef("--pool FILE is required")
	}
	for _, r := range []float64{cfg.ErrorRate, cfg.DropRate, cfg.MalformedRate, cfg.TruncateRate, cfg.BadBlockRate} {
		if r < 0 || r > 1 {
			return cli.Usagef("rates must be between 0 and 1")
		}
	}
	if cfg.ErrorRate+cfg.DropRate > 1 || cfg.MalformedRate+cfg.TruncateRate > 1 {
		return cli.Usagef("--error-rate + --drop-rate and --malformed-rate + --truncate-rate must each be at most 1")
	}
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return err
		}
		cfg.APIKey = strings.TrimSpace(string(b))
	}
	tasks, err := selfinstruct.LoadTasks(pool)
	if err != nil {
		return err
	}
	cfg.Pool = tasks
	srv, err := New(*cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	if addrFile != "" {
		if err := xio.AtomicWriteFile(addrFile, []byte(ln.Addr().String()+"\n")); err != nil {
			ln.Close()
			return err
		}
	}
	if !quiet {
		fmt.Fprintf(stderr, "teachersim: %d pool records; listening on http://%s/v1\n", len(tasks), ln.Addr())
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer c2()
		err = hs.Shutdown(sctx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if !quiet {
		fmt.Fprintf(stderr, "teachersim: %s\n", srv.Summary())
	}
	return err
}

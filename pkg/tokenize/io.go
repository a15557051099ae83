package tokenize

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
	"github.com/alpaca-go/alpaca/pkg/xio"
	"github.com/klauspost/compress/zstd"
)

// EnvTokenizer names the environment variable read when --model is absent.
const EnvTokenizer = "ALPACA_TOKENIZER"

// resolveModel finds the tokenizer: --model, else $ALPACA_TOKENIZER.
func resolveModel(flagVal string) (string, error) {
	if flagVal != "" {
		return flagVal, nil
	}
	if env := os.Getenv(EnvTokenizer); env != "" {
		return env, nil
	}
	return "", cli.Usagef("no tokenizer: pass --model PATH (a SentencePiece .model, e.g. the LLaMA tokenizer.model) or set $%s", EnvTokenizer)
}

func loadModel(flagVal string) (*sentencepiece.Model, string, error) {
	path, err := resolveModel(flagVal)
	if err != nil {
		return nil, "", err
	}
	m, err := sentencepiece.Load(path)
	if err != nil {
		return nil, "", err
	}
	return m, path, nil
}

// output is stdout (the writer given to Main) or a file written atomically.
type output struct {
	io.Writer
	commit func() error
	abort  func()
}

func openOutput(path string, zstdFlag bool, stdout io.Writer) (*output, error) {
	if !xio.IsStdio(path) {
		o, err := xio.Create(path, zstdFlag)
		if err != nil {
			return nil, err
		}
		return &output{Writer: o, commit: o.Commit, abort: o.Abort}, nil
	}
	if zstdFlag {
		zw, err := zstd.NewWriter(stdout, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return &output{Writer: zw, commit: zw.Close, abort: func() { zw.Close() }}, nil
	}
	return &output{Writer: stdout, commit: func() error { return nil }, abort: func() {}}, nil
}

// openInput opens one input; "" or "-" reads stdin (the reader given to Main).
func openInput(path string, stdin io.Reader) (*xio.Input, error) {
	if xio.IsStdio(path) {
		return xio.NewInput(stdin, "<stdin>", nil)
	}
	return xio.Open(path)
}

// jsonlInputs yields the records of several inputs in order.
type jsonlInputs struct {
	files []string
	stdin io.Reader
	cur   *jsonl.Reader
	i     int
}

func newJSONLInputs(files []string, stdin io.Reader) *jsonlInputs {
	if len(files) == 0 {
		files = []string{"-"}
	}
	return &jsonlInputs{files: files, stdin: stdin}
}

// Next returns the next record and its file's display name.
func (in *jsonlInputs) Next() (jsonl.Record, string, error) {
	for {
		if in.cur == nil {
			if in.i >= len(in.files) {
				return jsonl.Record{}, "", io.EOF
			}
			f := in.files[in.i]
			in.i++
			var err error
			if xio.IsStdio(f) {
				in.cur, err = jsonl.NewReader(in.stdin, "<stdin>")
			} else {
				in.cur, err = jsonl.Open(f)
			}
			if err != nil {
				return jsonl.Record{}, "", err
			}
		}
		rec, err := in.cur.Next()
		if errors.Is(err, io.EOF) {
			in.cur.Close()
			in.cur = nil
			continue
		}
		return rec, in.cur.Name(), err
	}
}

// Close releases the current input.
func (in *jsonlInputs) Close() {
	if in.cur != nil {
		in.cur.Close()
		in.cur = nil
	}
}

func absOrSame(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

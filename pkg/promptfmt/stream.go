package promptfmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/prompt"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Work is cut into batches of records; workers format whole batches and the
// writer emits them in input order, so memory stays bounded by
// (2 x workers + 1) batches whatever the stream's length.
const (
	batchRecords = 512
	batchBytes   = 1 << 20
	maxSkipShown = 10
)

type processor struct {
	opts    *Options
	tpl     *prompt.Template
	keep    []string
	keepAll bool

	records, written, withInput, skipped int
	bytesIn                              int64
}

type batch struct {
	name      string
	recs      []jsonl.Record
	out       []byte
	written   int
	withInput int
	skipped   []string
	err       error // a bad record (stops the run) or a read error
	done      chan struct{}
}

// Output buffers are recycled: a batch's formatted bytes are dropped as soon
// as they are written.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*batchBytes); return &b }}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= 8*batchBytes {
		bufPool.Put(&b)
	}
}

// sink is where the output goes: a file written atomically, or stdout.
type sink interface {
	io.Writer
	Commit() error
	Abort()
}

func openSink(path string, zstdOut bool, stdout io.Writer) (sink, error) {
	return xio.CreateTo(path, zstdOut, stdout)
}

func (p *processor) run(files []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(files) == 0 {
		files = []string{"-"}
	}
	out, err := openSink(p.opts.Output, p.opts.Zstd, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	prog := cli.NewProgress(stderr, &p.opts.Common)
	start := time.Now()
	shown := 0
	emit := func(b *batch) error {
		p.records += b.written + len(b.skipped)
		p.written += b.written
		p.withInput += b.withInput
		p.skipped += len(b.skipped)
		for _, r := range b.recs {
			p.bytesIn += int64(len(r.Raw))
		}
		for _, m := range b.skipped {
			if !p.opts.Quiet && shown < maxSkipShown {
				fmt.Fprintf(stderr, "promptfmt: skipped %s\n", m)
			}
			shown++
		}
		_, err := out.Write(b.out)
		putBuf(b.out)
		b.out = nil
		if err != nil {
			return err
		}
		if b.err != nil {
			return b.err
		}
		prog.Update("promptfmt: %d records, %.1f MB", p.records, float64(p.bytesIn)/1e6)
		return ctx.Err()
	}
	for _, f := range files {
		if err = p.file(ctx, f, stdin, emit); err != nil {
			break
		}
	}
	prog.Done()
	if err != nil {
		out.Abort()
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted")
		}
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if !p.opts.Quiet {
		el := time.Since(start).Seconds()
		what := "prompts"
		if p.opts.Extract {
			what = "responses"
		}
		extra := ""
		if !p.opts.Extract {
			extra = fmt.Sprintf(" (%d with input)", p.withInput)
		}
		if shown > maxSkipShown {
			fmt.Fprintf(stderr, "promptfmt: ... and %d more skipped records\n", shown-maxSkipShown)
		}
		fmt.Fprintf(stderr, "promptfmt: %d records -> %d %s%s, %d skipped; %.1f MB in %.2fs (%.0f records/s)\n",
			p.records, p.written, what, extra, p.skipped, float64(p.bytesIn)/1e6, el, float64(p.records)/max(el, 1e-9))
	}
	return nil
}

// file streams one input through the workers into emit, in order.
func (p *processor) file(ctx context.Context, path string, stdin io.Reader, emit func(*batch) error) error {
	var r *jsonl.Reader
	var err error
	if xio.IsStdio(path) {
		r, err = jsonl.NewReader(stdin, "<stdin>")
	} else {
		r, err = jsonl.Open(path)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	name := r.Name()

	if p.opts.Workers <= 1 {
		for {
			b := p.read(r, name)
			if len(b.recs) > 0 {
				p.process(b)
			}
			if err := emit(b); err != nil {
				return err
			}
			if b.err != nil || len(b.recs) == 0 {
				return b.err
			}
		}
	}

	var readerDone sync.WaitGroup
	defer readerDone.Wait() // before r.Close, after close(stop)
	stop := make(chan struct{})
	defer close(stop)
	work := make(chan *batch, p.opts.Workers)
	order := make(chan *batch, 2*p.opts.Workers)
	for i := 0; i < p.opts.Workers; i++ {
		go func() {
			defer cli.Guard()
			for b := range work {
				p.process(b)
				close(b.done)
			}
		}()
	}
	readerDone.Add(1)
	go func() {
		defer cli.Guard()
		defer readerDone.Done()
		defer close(order)
		defer close(work)
		for {
			b := p.read(r, name)
			b.done = make(chan struct{})
			if b.err != nil || len(b.recs) == 0 {
				// the read error is reported after the records before it
				if len(b.recs) > 0 {
					rest := &batch{err: b.err, done: make(chan struct{})}
					b.err = nil
					select {
					case work <- b:
					case <-stop:
						return
					}
					select {
					case order <- b:
					case <-stop:
						return
					}
					b = rest
				}
				close(b.done)
				select {
				case order <- b:
				case <-stop:
				}
				return
			}
			select {
			case work <- b:
			case <-stop:
				return
			}
			select {
			case order <- b:
			case <-stop:
				return
			}
		}
	}()
	for b := range order {
		<-b.done
		if err := emit(b); err != nil {
			return err
		}
		if b.err != nil {
			return b.err
		}
		if len(b.recs) == 0 {
			return nil
		}
	}
	return nil
}

// read collects the next batch of records. At the end of the input it
// returns an empty batch; b.err holds a read error (after the records read
// before it). Invalid JSON in a JSON Lines record is skipped with --skip-bad.
func (p *processor) read(r *jsonl.Reader, name string) *batch {
	b := &batch{name: name}
	size := 0
	for len(b.recs) < batchRecords && size < batchBytes {
		rec, err := r.Next()
		if err == io.EOF {
			return b
		}
		if err != nil {
			var je *jsonl.Error
			if p.opts.SkipBad && errors.As(err, &je) && je.Record > 0 && je.Line > 0 && !isStructural(je) {
				b.skipped = append(b.skipped, err.Error())
				continue
			}
			b.err = err
			return b
		}
		b.recs = append(b.recs, rec)
		size += len(rec.Raw)
	}
	return b
}

// isStructural reports reader errors after which the stream cannot be
// resynchronised (inside a JSON array).
func isStructural(e *jsonl.Error) bool {
	return !strings.Contains(e.Msg, "invalid JSON:") || strings.Contains(e.Msg, "JSON array") || strings.Contains(e.Msg, "end of input")
}

// process formats every record of b into b.out; it stops at the first bad
// record unless --skip-bad.
func (p *processor) process(b *batch) {
	out := getBuf()
	for _, rec := range b.recs {
		n := len(out)
		var err error
		var withInput bool
		if p.opts.Extract {
			out, err = p.extract(out, b.name, rec)
		} else {
			out, withInput, err = p.format(out, b.name, rec)
		}
		if err != nil {
			out = out[:n]
			if p.opts.SkipBad {
				b.skipped = append(b.skipped, err.Error())
				continue
			}
			b.err = err
			break
		}
		b.written++
		if withInput {
			b.withInput++
		}
	}
	b.out = out
}

// fields are the members of one record promptfmt looks at.
type fields struct {
	instruction, input, output []byte // raw values; nil when absent
}

func (p *processor) badf(name string, rec jsonl.Record, format string, args ...any) error {
	return jsonl.Errorf(name, rec, format, args...)
}

// stringBody returns the body of a raw JSON string value after checking it.
func (p *processor) stringBody(name string, rec jsonl.Record, key string, v []byte) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' {
		return nil, p.badf(name, rec, "field %q is %s, want a string", key, jsonl.TypeName(v))
	}
	body := v[1 : len(v)-1]
	if err := prompt.CheckBody(body); err != nil {
		return nil, p.badf(name, rec, "field %q: %v", key, err)
	}
	return body, nil
}

func checkUTF8(name string, rec jsonl.Record) error {
	if utf8.Valid(rec.Raw) {
		return nil
	}
	for i := 0; i < len(rec.Raw); {
		r, n := utf8.DecodeRune(rec.Raw[i:])
		if r == utf8.RuneError && n == 1 {
			return jsonl.Errorf(name, rec, "invalid UTF-8 (byte 0x%02x at offset %d of the record)", rec.Raw[i], i)
		}
		i += n
	}
	return nil
}

// format appends the output record for rec.
func (p *processor) format(dst []byte, name string, rec jsonl.Record) ([]byte, bool, error) {
	if err := checkUTF8(name, rec); err != nil {
		return dst, false, err
	}
	members, err := jsonl.Members(rec.Raw)
	if err != nil {
		return dst, false, p.badf(name, rec, "is %s, want a JSON object", jsonl.TypeName(rec.Raw))
	}
	var f fields
	o := p.opts
	for _, m := range members {
		switch m.Key {
		case o.InstructionKey:
			f.instruction = m.Value
		case o.InputKey:
			f.input = m.Value
		case o.OutputKey:
			f.output = m.Value
		}
	}
	if f.instruction == nil {
		return dst, false, p.badf(name, rec, "missing field %q", o.InstructionKey)
	}
	ins, err := p.stringBody(name, rec, o.InstructionKey, f.instruction)
	if err != nil {
		return dst, false, err
	}
	var in []byte
	if f.input != nil {
		if in, err = p.stringBody(name, rec, o.InputKey, f.input); err != nil {
			return dst, false, err
		}
	}
	var outBody []byte
	if !o.Infer {
		if f.output == nil {
			return dst, false, p.badf(name, rec, "missing field %q (use --infer to write prompts only)", o.OutputKey)
		}
		if outBody, err = p.stringBody(name, rec, o.OutputKey, f.output); err != nil {
			return dst, false, err
		}
	}
	dst = append(dst, `{"prompt":"`...)
	dst = p.tpl.AppendJSON(dst, ins, in)
	if !o.Infer {
		dst = append(dst, `","completion":"`...)
		dst = append(dst, outBody...)
	}
	dst = append(dst, '"')
	dst = p.appendKept(dst, members)
	dst = append(dst, '}', '\n')
	return dst, len(in) > 0, nil
}

// appendKept appends the passed-through members: those named by --keep in
// that order (the last duplicate wins), or with '*' every member that was
// not consumed, in input order.
func (p *processor) appendKept(dst []byte, members []jsonl.Member) []byte {
	o := p.opts
	if p.keepAll {
		for _, m := range members {
			switch m.Key {
			case o.InstructionKey, o.InputKey, "prompt", "completion":
				continue
			case o.OutputKey:
				if !o.Infer {
					continue
				}
			}
			dst = append(dst, ',')
			dst = jsonl.AppendString(dst, m.Key)
			dst = append(dst, ':')
			dst = append(dst, m.Value...)
		}
		return dst
	}
	for _, k := range p.keep {
		var v []byte
		for _, m := range members {
			if m.Key == k {
				v = m.Value
			}
		}
		if v == nil {
			continue
		}
		dst = append(dst, ',')
		dst = jsonl.AppendString(dst, k)
		dst = append(dst, ':')
		dst = append(dst, v...)
	}
	return dst
}

// extract appends rec with the response cut out of its model output.
func (p *processor) extract(dst []byte, name string, rec jsonl.Record) ([]byte, error) {
	if err := checkUTF8(name, rec); err != nil {
		return dst, err
	}
	o := p.opts
	members, err := jsonl.Members(rec.Raw)
	if err != nil {
		return dst, p.badf(name, rec, "is %s, want a JSON object", jsonl.TypeName(rec.Raw))
	}
	var field, pv, cv []byte
	for _, m := range members {
		switch m.Key {
		case o.Field:
			field = m.Value
		case "prompt":
			pv = m.Value
		case "completion":
			cv = m.Value
		}
	}
	var text []byte
	switch {
	case field != nil:
		if text, err = p.decode(nil, name, rec, o.Field, field); err != nil {
			return dst, err
		}
	case pv != nil && cv != nil:
		if text, err = p.decode(nil, name, rec, "prompt", pv); err != nil {
			return dst, err
		}
		if text, err = p.decode(text, name, rec, "completion", cv); err != nil {
			return dst, err
		}
	default:
		return dst, p.badf(name, rec, "missing field %q (nor a promptfmt record with prompt and completion)", o.Field)
	}
	resp, ok := p.tpl.Extract(string(text))
	if !ok {
		return dst, p.badf(name, rec, "response_split %q of template %s not found in the model output", p.tpl.ResponseSplit, p.tpl.Name)
	}
	out, err := jsonl.Set(rec.Raw, o.OutputKey, jsonl.AppendString(make([]byte, 0, len(resp)+8), resp))
	if err != nil {
		return dst, p.badf(name, rec, "%v", err)
	}
	dst = append(dst, out...)
	return append(dst, '\n'), nil
}

// decode appends the text of the string value v to dst.
func (p *processor) decode(dst []byte, name string, rec jsonl.Record, key string, v []byte) ([]byte, error) {
	body, err := p.stringBody(name, rec, key, v)
	if err != nil {
		return nil, err
	}
	return prompt.AppendUnescaped(dst, body), nil
}

package tokenize

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/jsonl"
	"github.com/alpaca-go/alpaca/pkg/sentencepiece"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
)

// eachStream opens the token streams in files (stdin when none) in turn.
func eachStream(files []string, stdin io.Reader, fn func(r *tokstream.Reader, name string) error) error {
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		in, err := openInput(f, stdin)
		if err != nil {
			return err
		}
		r, err := tokstream.NewReader(in.Reader, in.Name)
		if err == nil {
			err = fn(r, in.Name)
		}
		in.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// modelForStream loads the tokenizer for decoding a stream: --model, else
// $ALPACA_TOKENIZER, else the path recorded in the stream's metadata; its
// fingerprint must match the stream's.
func modelForStream(flagVal string, h tokstream.Header, name string) (*sentencepiece.Model, error) {
	path, err := resolveModel(flagVal)
	if err != nil {
		p, _ := h.Meta["tokenizer_path"].(string)
		if p == "" {
			return nil, err
		}
		if _, serr := os.Stat(p); serr != nil {
			return nil, cli.Usagef("%s was made with %s, which is not there any more: pass --model PATH", name, p)
		}
		path = p
	}
	m, err := sentencepiece.Load(path)
	if err != nil {
		return nil, err
	}
	if m.Fingerprint != h.Fingerprint {
		return nil, fmt.Errorf("%s was made with another tokenizer (sha256 %s…) than %s (sha256 %s…)",
			name, h.FingerprintHex()[:12], path, hex.EncodeToString(m.Fingerprint[:6]))
	}
	if m.VocabSize() != h.VocabSize {
		return nil, fmt.Errorf("%s: vocab size %d, tokenizer has %d", name, h.VocabSize, m.VocabSize())
	}
	return m, nil
}

func runDecodeStream(ctx context.Context, f *stageFlags, files []string, stdin io.Reader, stdout, stderr io.Writer) error {
	out, err := openOutput(f.common.Output, f.common.Zstd, stdout)
	if err != nil {
		return err
	}
	w := newLineWriter(out)
	err = eachStream(files, stdin, func(r *tokstream.Reader, name string) error {
		h := r.Header()
		m, err := modelForStream(f.model, h, name)
		if err != nil {
			return err
		}
		var buf []byte
		for n := 1; ; n++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			ex, err := r.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			buf, err = decodeRecord(buf[:0], m, h, n, ex, f.showIDs)
			if err != nil {
				return err
			}
			if err := w.line(buf); err != nil {
				return err
			}
		}
	})
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
	}
	return err
}

// decodeRecord renders one example as a JSON object: the masked part as
// "prompt", the rest as "completion" (split on the decoded text so that
// byte pieces across the boundary stay whole), BOS/EOS presence, counts.
func decodeRecord(dst []byte, m *sentencepiece.Model, h tokstream.Header, n int, ex tokstream.Example, withIDs bool) ([]byte, error) {
	ids := ex.IDs
	first := len(ids) // first target position
	for i, t := range ex.Mask {
		if t {
			first = i
			break
		}
	}
	contiguous := true
	for _, t := range ex.Mask[first:] {
		if !t {
			contiguous = false
		}
	}
	full, err := m.Decode(ids)
	if err != nil {
		return nil, fmt.Errorf("record %d: %v", n, err)
	}
	prompt, _ := m.Decode(ids[:first])
	completion := ""
	if strings.HasPrefix(full, prompt) {
		completion = full[len(prompt):]
	} else {
		completion, _ = m.Decode(ids[first:])
	}
	dst = append(dst, `{"record":`...)
	dst = fmt.Appendf(dst, "%d", n)
	dst = append(dst, `,"prompt":`...)
	dst = jsonl.AppendString(dst, prompt)
	dst = append(dst, `,"completion":`...)
	dst = jsonl.AppendString(dst, completion)
	dst = fmt.Appendf(dst, `,"tokens":%d,"targets":%d`, len(ids), ex.Targets())
	dst = fmt.Appendf(dst, `,"bos":%t,"eos":%t`, len(ids) > 0 && ids[0] == h.BOS, len(ids) > 0 && ids[len(ids)-1] == h.EOS)
	if !contiguous {
		dst = append(dst, `,"mask_contiguous":false`...)
	}
	if withIDs {
		dst = append(dst, `,"ids":[`...)
		for i, id := range ids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = fmt.Appendf(dst, "%d", id)
		}
		dst = append(dst, `],"mask":"`...)
		for _, t := range ex.Mask {
			if t {
				dst = append(dst, '1')
			} else {
				dst = append(dst, '0')
			}
		}
		dst = append(dst, '"')
	}
	return append(dst, '}'), nil
}

type lineWriter struct {
	w   io.Writer
	buf []byte
}

func newLineWriter(w io.Writer) *lineWriter { return &lineWriter{w: w} }

func (l *lineWriter) line(b []byte) error {
	l.buf = append(l.buf, b...)
	l.buf = append(l.buf, '\n')
	if len(l.buf) >= 1<<16 {
		return l.flush()
	}
	return nil
}

func (l *lineWriter) write(b []byte) error {
	l.buf = append(l.buf, b...)
	if len(l.buf) >= 1<<16 {
		return l.flush()
	}
	return nil
}

func (l *lineWriter) flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	l.buf = l.buf[:0]
	return err
}

// StreamStats summarizes token streams.
type StreamStats struct {
	Streams     int            `json:"streams"`
	Examples    int64          `json:"examples"`
	Tokens      int64          `json:"tokens"`
	Targets     int64          `json:"targets"`
	MaskedShare float64        `json:"masked_share"`
	MinLen      int            `json:"min_len"`
	MaxLen      int            `json:"max_len"`
	MeanLen     float64        `json:"mean_len"`
	Truncated   int64          `json:"truncated"`
	FullyMasked int64          `json:"fully_masked"`
	LimitLen    int            `json:"limit_len,omitempty"`
	Histogram   []HistogramBin `json:"histogram"`
	VocabSize   int            `json:"vocab_size"`
	Fingerprint string         `json:"tokenizer_sha256"`
	Meta        map[string]any `json:"meta,omitempty"`
	lens        map[int]int64
}

// HistogramBin counts examples with Lo <= length <= Hi.
type HistogramBin struct {
	Lo    int   `json:"lo"`
	Hi    int   `json:"hi"`
	Count int64 `json:"count"`
}

func mainStats(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("tokenize stats", "[flags] [STREAM...]",
		`Prints what a token stream holds: examples, tokens, the share of masked
(prompt) tokens, length range and histogram, and how many examples were cut
at the length limit (full length and no EOS at the end).`,
		`tokenize stats train.tok
tokenize stats --json train.tok | jq .truncated`)
	asJSON := cmd.Flags.Bool("json", false, "print one JSON object instead of a table")
	bins := cmd.Flags.Int("bins", 8, "histogram bins (`N`)")
	files, err := cmd.Parse(args)
	if err == nil && *bins < 1 {
		err = cli.Usagef("--bins must be at least 1")
	}
	if err == nil {
		var st *StreamStats
		st, err = computeStats(files, stdin, *bins)
		if err == nil {
			if *asJSON {
				var b []byte
				if b, err = jsonl.Marshal(st); err == nil {
					_, err = fmt.Fprintf(stdout, "%s\n", b)
				}
			} else {
				err = printStats(stdout, st)
			}
		}
	}
	return cmd.Exit(err, stdout, stderr)
}

func computeStats(files []string, stdin io.Reader, bins int) (*StreamStats, error) {
	st := &StreamStats{lens: map[int]int64{}, MinLen: -1}
	err := eachStream(files, stdin, func(r *tokstream.Reader, name string) error {
		h := r.Header()
		st.Streams++
		st.VocabSize = h.VocabSize
		st.Fingerprint = h.FingerprintHex()
		st.Meta = h.Meta
		limit := 0
		if v, ok := h.Meta["max_len"].(float64); ok {
			limit = int(v)
			st.LimitLen = limit
		}
		for {
			ex, err := r.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			n := len(ex.IDs)
			t := ex.Targets()
			st.Examples++
			st.Tokens += int64(n)
			st.Targets += int64(t)
			st.lens[n]++
			if st.MinLen < 0 || n < st.MinLen {
				st.MinLen = n
			}
			if n > st.MaxLen {
				st.MaxLen = n
			}
			if t == 0 {
				st.FullyMasked++
			}
			if limit > 0 && n == limit && (h.EOS < 0 || ex.IDs[n-1] != h.EOS) {
				st.Truncated++
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if st.MinLen < 0 {
		st.MinLen = 0
	}
	if st.Examples > 0 {
		st.MeanLen = float64(st.Tokens) / float64(st.Examples)
	}
	if st.Tokens > 0 {
		st.MaskedShare = float64(st.Tokens-st.Targets) / float64(st.Tokens)
	}
	// Equal-width bins over [0, max(limit, longest)].
	top := max(st.LimitLen, st.MaxLen)
	if top > 0 {
		width := (top + bins - 1) / bins
		for lo := 0; lo <= top; lo += width {
			st.Histogram = append(st.Histogram, HistogramBin{Lo: lo, Hi: min(lo+width-1, top)})
		}
		keys := make([]int, 0, len(st.lens))
		for k := range st.lens {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			st.Histogram[min(k/width, len(st.Histogram)-1)].Count += st.lens[k]
		}
	}
	return st, nil
}

func printStats(w io.Writer, st *StreamStats) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "examples       %d\n", st.Examples)
	fmt.Fprintf(&sb, "tokens         %d\n", st.Tokens)
	fmt.Fprintf(&sb, "targets        %d\n", st.Targets)
	fmt.Fprintf(&sb, "masked share   %.2f%%\n", 100*st.MaskedShare)
	fmt.Fprintf(&sb, "length         min %d, mean %.1f, max %d\n", st.MinLen, st.MeanLen, st.MaxLen)
	if st.LimitLen > 0 {
		fmt.Fprintf(&sb, "truncated      %d (cut at --max-len %d)\n", st.Truncated, st.LimitLen)
	} else {
		fmt.Fprintf(&sb, "truncated      %d (no length limit)\n", st.Truncated)
	}
	fmt.Fprintf(&sb, "fully masked   %d\n", st.FullyMasked)
	fmt.Fprintf(&sb, "vocab          %d (tokenizer sha256 %s)\n", st.VocabSize, st.Fingerprint)
	if len(st.Histogram) > 0 {
		fmt.Fprintf(&sb, "length histogram:\n")
		var most int64
		for _, b := range st.Histogram {
			most = max(most, b.Count)
		}
		for _, b := range st.Histogram {
			bar := 0
			if most > 0 {
				bar = int(40 * b.Count / most)
			}
			fmt.Fprintf(&sb, "  %5d-%-5d %8d %s\n", b.Lo, b.Hi, b.Count, strings.Repeat("#", bar))
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

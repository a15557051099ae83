package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Metrics appends one JSON line per optimizer step to a file.
type Metrics struct {
	f    *os.File
	w    *bufio.Writer
	path string
}

// OpenMetrics creates path afresh, or, when resuming from step > 0, keeps
// the lines of steps <= resumeStep that it already holds and appends after
// them (so a resumed run's metrics read as one run).
func OpenMetrics(path string, resumeStep int) (*Metrics, error) {
	if resumeStep > 0 {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		var kept []byte
		for _, line := range bytes.SplitAfter(b, []byte("\n")) {
			var r struct {
				Step *int `json:"step"`
			}
			if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &r) != nil || r.Step == nil || *r.Step > resumeStep {
				continue
			}
			kept = append(kept, line...)
		}
		if err := xio.AtomicWriteFile(path, kept); err != nil {
			return nil, err
		}
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if resumeStep > 0 {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	return &Metrics{f: f, w: bufio.NewWriter(f), path: path}, nil
}

// Write appends r as one line and flushes it (so `tail -f` follows).
func (m *Metrics) Write(r StepResult) error {
	b, err := json.Marshal(metricLine(r))
	if err != nil {
		return err
	}
	m.w.Write(b)
	m.w.WriteByte('\n')
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("writing metrics to %s: %w", m.path, err)
	}
	return nil
}

// WriteEval appends an evaluation line {"step", "eval_loss",
// "eval_targets"}.
func (m *Metrics) WriteEval(step int, r EvalResult) error {
	b, err := json.Marshal(map[string]any{"step": step, "eval_loss": r.Loss, "eval_targets": r.Targets})
	if err != nil {
		return err
	}
	m.w.Write(b)
	m.w.WriteByte('\n')
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("writing metrics to %s: %w", m.path, err)
	}
	return nil
}

// Close closes the file.
func (m *Metrics) Close() error {
	err := m.w.Flush()
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// metricLine rounds for readability; JSON has no NaN, so non-finite values
// (never written by a healthy run) become null.
func metricLine(r StepResult) map[string]any {
	num := func(x float64, digits int) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		p := math.Pow(10, float64(digits))
		return math.Round(x*p) / p
	}
	return map[string]any{
		"step": r.Step, "epoch": num(r.Epoch, 4), "loss": r.Loss, "lr": r.LR,
		"grad_norm": num(r.GradNorm, 6), "tokens": r.Tokens, "targets": r.Targets,
		"tokens_per_s": num(r.TokensPerS, 1), "elapsed": num(r.Elapsed, 3),
	}
}

// MetricRecord is one line of a metrics file, as read back.
type MetricRecord struct {
	Step     int      `json:"step"`
	Epoch    float64  `json:"epoch"`
	Loss     *float64 `json:"loss"`
	LR       float64  `json:"lr"`
	GradNorm *float64 `json:"grad_norm"`
	EvalLoss *float64 `json:"eval_loss"` // evaluation lines (--eval-every)
}

// ReadMetrics reads a metrics JSONL file (as written by Metrics; other
// fields are ignored). Errors name the line.
func ReadMetrics(r io.Reader, name string) ([]MetricRecord, error) {
	var out []MetricRecord
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m MetricRecord
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		if m.Step <= 0 {
			return nil, fmt.Errorf("%s:%d: no positive \"step\" (is this a trainer metrics file?)", name, n)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}

package jsonl

import (
	"io"

	"github.com/alpaca-go/alpaca/pkg/xio"
)

// Writer writes one JSON value per line.
type Writer struct {
	out *xio.Output
	n   int
}

// Create opens path ("" or "-" = stdout) for writing; zstd as xio.Create.
func Create(path string, zstd bool) (*Writer, error) {
	o, err := xio.Create(path, zstd)
	if err != nil {
		return nil, err
	}
	return &Writer{out: o}, nil
}

// CreateTo is Create with stdout replaced by w (see xio.CreateTo).
func CreateTo(path string, zstd bool, stdout io.Writer) (*Writer, error) {
	o, err := xio.CreateTo(path, zstd, stdout)
	if err != nil {
		return nil, err
	}
	return &Writer{out: o}, nil
}

// Write writes one raw JSON value (it must not contain a newline) and '\n'.
func (w *Writer) Write(raw []byte) error {
	w.n++
	if _, err := w.out.Write(raw); err != nil {
		return err
	}
	return w.out.WriteByte('\n')
}

// Encode marshals v (no HTML escaping) and writes it.
func (w *Writer) Encode(v any) error {
	b, err := Marshal(v)
	if err != nil {
		return err
	}
	return w.Write(b)
}

// Flush pushes buffered records to the underlying stream (useful when
// records must appear as soon as they are produced).
func (w *Writer) Flush() error { return w.out.Flush() }

// Count is the number of records written.
func (w *Writer) Count() int { return w.n }

// Commit finishes the output (renaming a file into place).
func (w *Writer) Commit() error { return w.out.Commit() }

// Abort discards a file output.
func (w *Writer) Abort() { w.out.Abort() }

// Name is the output's display name.
func (w *Writer) Name() string { return w.out.Name }

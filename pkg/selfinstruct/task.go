// Package selfinstruct generates instruction-following data the way the
// Stanford Alpaca generator did (self-instruct with a teacher model): it
// samples seed tasks into a prompt, asks an OpenAI-compatible teacher to
// continue the numbered list, parses the answer into tasks, filters them
// (length, blacklist, ...), drops near-duplicates with ROUGE-L through
// pkg/rouge and streams the kept tasks as JSONL. Generation is concurrent,
// but what is kept depends only on --seed and the teacher's answers, never
// on timing; a run can be killed at any moment and resumed.
package selfinstruct

import (
	"errors"
	"fmt"
	"io"

	"github.com/alpaca-go/alpaca/pkg/jsonl"
)

// Task is one instruction/input/output triple.
type Task struct {
	Instruction string
	Input       string
	Output      string
}

// LoadTasks reads tasks from a JSONL file (or JSON array): either the
// self-instruct seed format (instruction + instances[0].input/.output) or
// plain instruction/input/output records. instruction is required.
func LoadTasks(path string) ([]Task, error) {
	r, err := jsonl.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []Task
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		t, err := taskFromRecord(rec.Raw)
		if err != nil {
			return nil, jsonl.Errorf(r.Name(), rec, "%v", err)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tasks", r.Name())
	}
	return out, nil
}

func taskFromRecord(raw []byte) (Task, error) {
	var t Task
	inst, found, err := jsonl.GetString(raw, "instruction")
	if err != nil {
		return t, err
	}
	if !found {
		return t, fmt.Errorf("no \"instruction\" field")
	}
	t.Instruction = inst
	src := raw
	if inst, ok, err := jsonl.Get(raw, "instances"); err == nil && ok {
		first, err := firstElement(inst)
		if err != nil {
			return t, fmt.Errorf("field \"instances\": %v", err)
		}
		src = first
	}
	if src == nil {
		return t, nil
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"input", &t.Input}, {"output", &t.Output}} {
		v, ok, err := jsonl.Get(src, f.key)
		if err != nil {
			return t, err
		}
		if !ok || string(v) == "null" {
			continue
		}
		s, err := jsonl.DecodeString(v)
		if err != nil {
			return t, fmt.Errorf("field %q %v", f.key, err)
		}
		*f.dst = s
	}
	return t, nil
}

// firstElement returns the first element of a raw JSON array (nil when the
// array is empty).
func firstElement(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != '[' {
		return nil, fmt.Errorf("is %s, want an array", jsonl.TypeName(v))
	}
	i := 1
	for i < len(v) && (v[i] == ' ' || v[i] == '\n' || v[i] == '\t' || v[i] == '\r') {
		i++
	}
	if i >= len(v) || v[i] == ']' {
		return nil, nil
	}
	if v[i] != '{' {
		return nil, fmt.Errorf("element 0 is %s, want an object", jsonl.TypeName(v[i:]))
	}
	depth := 0
	for j := i; j < len(v); j++ {
		switch v[j] {
		case '"':
			for j++; j < len(v) && v[j] != '"'; j++ {
				if v[j] == '\\' {
					j++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return v[i : j+1], nil
			}
		}
	}
	return nil, fmt.Errorf("unterminated")
}

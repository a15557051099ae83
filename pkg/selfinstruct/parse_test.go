package selfinstruct

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

type parseCase struct {
	Name         string `json:"name"`
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
}

type goldenTask struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

// The golden file is the output of scripts/fixtures/seedgen_parse.py, a
// plain-Python re-implementation of the original generator's
// post_process_gpt3_response, on testdata/seedgen/parse_cases.json:
//
//	/usr/bin/python3 scripts/fixtures/seedgen_parse.py testdata/seedgen/parse_cases.json > testdata/seedgen/parse_golden.json
func TestParseMatchesReference(t *testing.T) {
	var cases []parseCase
	var golden map[string][]goldenTask
	readJSON(t, "../../testdata/seedgen/parse_cases.json", &cases)
	readJSON(t, "../../testdata/seedgen/parse_golden.json", &golden)
	if len(cases) < 10 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			var got []goldenTask
			for _, b := range ParseResponse(c.Text, 4, c.FinishReason) {
				if b.Reason != "" || FilterReason(b.Task) != "" {
					continue
				}
				got = append(got, goldenTask{b.Task.Instruction, b.Task.Input, b.Task.Output})
			}
			want := golden[c.Name]
			if c.Name == "restated_first" {
				// Deliberate difference: the original always prepends
				// "4. Instruction:", which breaks an answer that restates
				// it (as chat models do); we keep that first task.
				want = append([]goldenTask{{"Name the author of the novel.", "Pride and Prejudice", "Jane Austen"}}, want...)
			}
			if len(got) == 0 && len(want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestParseReasons(t *testing.T) {
	var cases []parseCase
	readJSON(t, "../../testdata/seedgen/parse_cases.json", &cases)
	byName := map[string]parseCase{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	count := func(name string) map[string]int {
		c := byName[name]
		m := map[string]int{}
		for _, b := range ParseResponse(c.Text, 4, c.FinishReason) {
			r := b.Reason
			if r == "" {
				r = FilterReason(b.Task)
			}
			if r == "" {
				r = "ok"
			}
			m[r]++
		}
		return m
	}
	for _, tc := range []struct {
		name string
		want map[string]int
	}{
		{"well_formed", map[string]int{"ok": 3}},
		{"missing_parts", map[string]int{"ok": 1, ReasonMalformed: 3}},
		{"truncated_last", map[string]int{"ok": 2, ReasonTruncated: 1}},
		{"truncated_but_stopped", map[string]int{"ok": 2}},
		{"numbering_skips", map[string]int{"ok": 4}},
		{"label_in_output", map[string]int{"ok": 1, ReasonMalformed: 1}},
		{"filters", map[string]int{"ok": 3, ReasonBlacklist: 4, ReasonProgram: 2, ReasonTooShort: 1, ReasonPunctStart: 1, ReasonNonASCII: 1, ReasonTooLong: 1}},
		{"empty", map[string]int{ReasonMalformed: 1}},
		{"only_separators", map[string]int{ReasonMalformed: 1}},
	} {
		if got := count(tc.name); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseDetails(t *testing.T) {
	b := ParseResponse(" Say hi to the person named below.\n4. Input:\n<noinput>\n4. Output:\n  Hi!  \n", 4, "stop")
	if len(b) != 1 || b[0].Reason != "" || b[0].Task != (Task{"Say hi to the person named below.", "", "Hi!"}) {
		t.Fatalf("%+v", b)
	}
	// A cut answer: the last block is dropped even when it parses.
	b = ParseResponse(" Say hi to the person named below.\n4. Input:\nAnn\n4. Output:\nHi Ann!", 4, "length")
	if len(b) != 1 || b[0].Reason != ReasonTruncated {
		t.Fatalf("%+v", b)
	}
	// Whole words only, any case, Unicode word boundaries.
	for inst, want := range map[string]string{
		"Explain why roadmaps help software teams plan.": "",
		"Summarise the Roadmap for the next quarter.":    "",
		"Explain what a MAP is in simple words.":         ReasonBlacklist,
		"Explain what a map-reduce job does in words.":   ReasonBlacklist,
		"Explain what imageé means in this sentence.":    "",
		"Tell me how to go  to the park quickly.":        "",
		"Tell me how to Go To the park quickly.":         ReasonBlacklist,
	} {
		if got := FilterReason(Task{Instruction: inst}); got != want {
			t.Errorf("%q: got %q, want %q", inst, got, want)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(" a b c d\n4. Input:\nx\n4. Output:\ny\n###\n5. Instruction: e f g h\n5. Input:\n<noinput>\n5. Output:\nz", "stop")
	f.Add("###", "length")
	f.Add("1.Instruction:1.Input:1.Output:", "stop")
	f.Fuzz(func(t *testing.T, text, fin string) {
		for _, b := range ParseResponse(text, 4, fin) {
			if b.Reason != "" {
				continue
			}
			if strings.Contains(b.Task.Instruction, "###") {
				t.Fatalf("separator inside a task: %q", b.Task.Instruction)
			}
			if b.Task.Instruction != strings.TrimSpace(b.Task.Instruction) {
				t.Fatalf("untrimmed %q", b.Task.Instruction)
			}
			FilterReason(b.Task)
		}
	})
}

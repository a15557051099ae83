package selfinstruct

import (
	"regexp"
	"strconv"
	"strings"
)

// partRE splits a block into its numbered parts, like the original
// generator's re.split(r"\d+\s?\.\s?(Instruction|Input|Output):", ...).
var partRE = regexp.MustCompile(`[0-9]+\s?\.\s?(Instruction|Input|Output):`)

// leadRE recognises an answer that restates the number of the first task
// (chat models usually do; completion models continue after "N. Instruction:").
var leadRE = regexp.MustCompile(`^\s*[0-9]+\s?\.\s?Instruction:`)

// Block is one "###"-separated block of a teacher's answer.
type Block struct {
	Task   Task
	Reason string // "" when parsed; else ReasonMalformed or ReasonTruncated
}

// Discard reasons of the parser.
const (
	ReasonMalformed = "malformed"
	ReasonTruncated = "truncated"
)

// ParseResponse splits a teacher's answer into tasks. first is the number
// of the first new task (prompt instructions + 1): when the answer does not
// start with "N. Instruction:" it is prepended, as a completion model
// continues right after it. The answer is split on "###"; a block must split
// into exactly instruction, input and output (else ReasonMalformed); blank
// blocks are ignored; when finishReason is "length" the last non-blank
// block is dropped (ReasonTruncated) because the teacher was cut off in it.
// "<noinput>" (in any case) becomes "".
func ParseResponse(text string, first int, finishReason string) []Block {
	if !leadRE.MatchString(text) {
		text = strconv.Itoa(first) + ". Instruction:" + text
	}
	raw := strings.Split(text, "###")
	var out []Block
	for i, b := range raw {
		if strings.TrimSpace(b) == "" {
			continue
		}
		if i == len(raw)-1 && finishReason == "length" {
			out = append(out, Block{Reason: ReasonTruncated})
			continue
		}
		t, ok := parseBlock(b)
		if !ok {
			out = append(out, Block{Reason: ReasonMalformed})
			continue
		}
		out = append(out, Block{Task: t})
	}
	return out
}

// parseBlock mirrors the 7-part split of the original: text before the
// first label, then label/content pairs for Instruction, Input, Output.
func parseBlock(b string) (Task, bool) {
	locs := partRE.FindAllStringSubmatchIndex(b, -1)
	if len(locs) != 3 {
		return Task{}, false
	}
	// As in the original, the parts are taken by position; the labels'
	// names are not checked.
	var parts [3]string
	for i, l := range locs {
		end := len(b)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		parts[i] = strings.TrimSpace(b[l[1]:end])
	}
	t := Task{Instruction: parts[0], Input: parts[1], Output: parts[2]}
	if strings.EqualFold(t.Input, "<noinput>") {
		t.Input = ""
	}
	return t, true
}

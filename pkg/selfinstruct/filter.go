package selfinstruct

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Discard reasons of the filters (in the order they are checked).
const (
	ReasonTooShort   = "too_short"         // 3 words or fewer
	ReasonTooLong    = "too_long"          // more than 150 words
	ReasonBlacklist  = "blacklist"         // a blacklisted word, whole word, any case
	ReasonProgram    = "write_a_program"   // starts with "Write a program"
	ReasonPunctStart = "punctuation_start" // first character is ASCII punctuation
	ReasonNonASCII   = "non_ascii_start"   // first character is not ASCII
	ReasonDuplicate  = "similar"           // ROUGE-L above the threshold against the pool
)

// Blacklist is the original generator's list of words a text-only model
// cannot act on.
var Blacklist = []string{
	"image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
	"map", "maps", "draw", "plot", "go to", "video", "audio", "music",
	"flowchart", "diagram",
}

// blacklistRE matches any blacklisted word as a whole word, ignoring case.
// Word characters are letters, digits and '_' in any script, as Python's
// Unicode \b.
var blacklistRE = regexp.MustCompile(`(?i)(?:^|[^\p{L}\p{N}\p{M}_])(?:` +
	strings.Join(Blacklist, "|") + `)(?:[^\p{L}\p{N}\p{M}_]|$)`)

const asciiPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// FilterReason returns why the task's instruction is discarded, or "".
func FilterReason(t Task) string {
	inst := t.Instruction
	n := len(strings.Fields(inst))
	switch {
	case n <= 3:
		return ReasonTooShort
	case n > 150:
		return ReasonTooLong
	case blacklistRE.MatchString(inst):
		return ReasonBlacklist
	case strings.HasPrefix(inst, "Write a program"):
		return ReasonProgram
	case strings.IndexByte(asciiPunct, inst[0]) >= 0:
		return ReasonPunctStart
	}
	if r, _ := utf8.DecodeRuneInString(inst); r >= utf8.RuneSelf {
		return ReasonNonASCII
	}
	return ""
}

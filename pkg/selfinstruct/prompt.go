package selfinstruct

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPrompt is the preamble placed before the sampled seed tasks. It is
// our own wording of the requirements the Alpaca generator asked for; pass
// --prompt-file to use another one (for instance the original prompt.txt).
const DefaultPrompt = `Help us collect a varied set of tasks for teaching a language model to follow instructions. Below are a few numbered tasks; add new ones, numbered in sequence, until the list holds 20 tasks. Every task has three parts: an instruction, an input and an output.

Rules for the new tasks:
1. Use a different main verb in each instruction, so that the list is as varied as possible.
2. Phrase the instructions in different ways; mix direct commands with questions.
3. Cover many kinds of work: open questions, classification, rewriting and editing, summarising, brainstorming, extracting facts, simple reasoning and math, code, and so on.
4. Everything must be doable with text alone: nothing that needs seeing or hearing something, and nothing that acts in the world (such as setting an alarm or sending an email).
5. Write in English.
6. An instruction is one or two sentences long.
7. When a task needs an input, give a concrete, realistic one (a real sentence, paragraph, list or question, never a placeholder) of no more than 100 words. Many tasks need no input at all; then write <noinput> as the input.
8. The output is a good answer to the instruction and its input, no longer than 100 words.

List of 20 tasks:
`

var spaceRE = regexp.MustCompile(`\s+`)

// Prompter builds prompts from sampled seed tasks.
type Prompter struct {
	Header string // preamble (DefaultPrompt when empty)
	Seeds  []Task
	K      int // seed tasks per prompt
}

// First is the number of the first task the teacher is to write.
func (p *Prompter) First() int { return p.k() + 1 }

func (p *Prompter) k() int {
	if p.K > len(p.Seeds) {
		return len(p.Seeds)
	}
	return p.K
}

// Sample picks the seed tasks of prompt number idx: K distinct seeds drawn
// with a PCG generator seeded with (seed, idx), so any prompt can be rebuilt
// alone, in any order.
func (p *Prompter) Sample(seed uint64, idx uint64) []Task {
	rng := rand.New(rand.NewPCG(seed, idx))
	k := p.k()
	perm := make([]int, len(p.Seeds))
	for i := range perm {
		perm[i] = i
	}
	out := make([]Task, k)
	for i := 0; i < k; i++ {
		j := i + rng.IntN(len(perm)-i)
		perm[i], perm[j] = perm[j], perm[i]
		out[i] = p.Seeds[perm[i]]
	}
	return out
}

// Build renders the preamble, the tasks as numbered "###" blocks, and the
// opening of the next task for the teacher to continue.
func (p *Prompter) Build(tasks []Task) string {
	var b strings.Builder
	h := p.Header
	if h == "" {
		h = DefaultPrompt
	}
	b.WriteString(h)
	if !strings.HasSuffix(h, "\n") {
		b.WriteByte('\n')
	}
	for i, t := range tasks {
		n := strconv.Itoa(i + 1)
		inst := strings.TrimRight(strings.TrimSpace(spaceRE.ReplaceAllString(t.Instruction, " ")), ":")
		in := t.Input
		if in == "" {
			in = "<noinput>"
		}
		b.WriteString("###\n")
		b.WriteString(n + ". Instruction: " + inst + "\n")
		b.WriteString(n + ". Input:\n" + in + "\n")
		b.WriteString(n + ". Output:\n" + t.Output + "\n")
	}
	b.WriteString("###\n")
	b.WriteString(strconv.Itoa(len(tasks)+1) + ". Instruction:")
	return b.String()
}

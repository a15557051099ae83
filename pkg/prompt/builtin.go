package prompt

// The built-in templates. Their text is format, not code: the Alpaca prompts
// are the ones published in the Stanford Alpaca README (github.com/tatsu-lab/
// stanford_alpaca, "Data Release"), the short and vicuna-style forms are the
// well-known layouts of alpaca-lora's alpaca_short and FastChat's vicuna_v1.1.

const alpacaHeadInput = "Below is an instruction that describes a task, paired with an input that provides further context. " +
	"Write a response that appropriately completes the request.\n\n"
const alpacaHeadNoInput = "Below is an instruction that describes a task. " +
	"Write a response that appropriately completes the request.\n\n"

const vicunaSystem = "A chat between a curious user and an artificial intelligence assistant. " +
	"The assistant gives helpful, detailed, and polite answers to the user's questions. "

var builtins = map[string]*Template{}

func mustBuiltin(name, desc, in, noIn, split string) {
	t, err := New(name, desc, in, noIn, split)
	if err != nil {
		panic(err)
	}
	builtins[name] = t
}

func init() {
	mustBuiltin("alpaca",
		"Stanford Alpaca, as published in its README: the response starts on the line after '### Response:'.",
		alpacaHeadInput+"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
		alpacaHeadNoInput+"### Instruction:\n{instruction}\n\n### Response:\n",
		"### Response:")
	mustBuiltin("alpaca_legacy",
		"Stanford Alpaca as its train.py concatenates it: no newline between '### Response:' and the response.",
		alpacaHeadInput+"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
		alpacaHeadNoInput+"### Instruction:\n{instruction}\n\n### Response:",
		"### Response:")
	mustBuiltin("alpaca_short",
		"Alpaca sections without the preamble (alpaca-lora's alpaca_short).",
		"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
		"### Instruction:\n{instruction}\n\n### Response:\n",
		"### Response:")
	mustBuiltin("vicuna",
		"Vicuna v1.1 style single turn (USER/ASSISTANT); a non-empty input follows the instruction after a blank line.",
		vicunaSystem+"USER: {instruction}\n\n{input} ASSISTANT: ",
		vicunaSystem+"USER: {instruction} ASSISTANT: ",
		"ASSISTANT:")
}

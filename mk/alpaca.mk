# make alpaca: the whole Alpaca recipe as file targets under $(RUN), so a
# re-run skips finished stages and an interrupted training stage resumes from
# its newest checkpoint. Included by the top-level Makefile; every variable
# below can be set on the command line (make alpaca RUN=out/x MAX_STEPS=50).
# See docs/alpaca.md for what each stage does and the measured times.

SHARED        ?= ../shared/data
RUN           ?= out/alpaca
# data: DATA (a JSON/JSONL file of instruction/input/output records), or, when
# DATA is empty, a teacher: BASE_URL (OpenAI-compatible) or, when that is
# empty too, a teachersim started here on 127.0.0.1 with TEACHER_POOL.
DATA          ?= $(firstword $(wildcard $(SHARED)/alpaca_data.json))
SEEDS         ?= $(firstword $(wildcard $(SHARED)/seed_tasks.jsonl) testdata/seedgen/seeds.jsonl)
BASE_URL      ?=
TEACHER_MODEL ?= teachersim
TEACHER_POOL  ?= $(firstword $(wildcard $(SHARED)/alpaca_data.json) testdata/teachersim/pool.jsonl)
NUM_INSTRUCTIONS ?= 2000
THRESHOLD     ?= 0.7
# every HELDOUT_EVERY-th record (after dedup) is held out for evaluation
HELDOUT_EVERY ?= 50
TEMPLATE      ?= alpaca_legacy
# model: BASE (a Hugging Face LLaMA directory with tokenizer.model) or, when
# empty, a from-scratch model of this shape with a BPE tokenizer of VOCAB
# pieces trained on the data (or TOKENIZER, a SentencePiece .model).
BASE          ?=
TOKENIZER     ?=
VOCAB         ?= 4000
HIDDEN        ?= 256
LAYERS        ?= 4
HEADS         ?= 8
KV_HEADS      ?= 4
INTERMEDIATE  ?= 688
# training: MAX_STEPS optimizer steps (0: EPOCHS epochs) of BATCH examples
# packed into rows of SEQ_LEN tokens.
SEQ_LEN       ?= 256
BATCH         ?= 32
MICRO         ?= 8
EPOCHS        ?= 1
MAX_STEPS     ?= 600
LR            ?= $(if $(BASE),2e-5,2e-3)
WARMUP        ?= 20
SAVE_EVERY    ?= 25
DEVICE        ?= cpu
LORA          ?=
SEED          ?= 1
# answers shown at the end: ASK held-out instructions, MAX_NEW tokens each
ASK           ?= 3
MAX_NEW       ?= 96
# tokens per second of the training stage on this 2-core machine, for the
# estimate printed at the start (measured: docs/alpaca.md)
EST_TOKS      ?= 2400

ALPACA_BIN := $(abspath $(BIN))
STAGE      := bash scripts/alpaca/stage.sh $(RUN)
TOKMODEL   := $(if $(BASE),$(BASE)/tokenizer.model,$(if $(TOKENIZER),$(TOKENIZER),$(RUN)/tokenizer.model))
MODEL0     := $(if $(BASE),$(BASE),$(RUN)/base)
STEPFLAGS  := $(if $(filter-out 0,$(MAX_STEPS)),--max-steps $(MAX_STEPS),--epochs $(EPOCHS))

.PHONY: alpaca alpaca-banner alpaca-clean

# keep every stage output, including those made by pattern rules
.SECONDARY:

alpaca: build alpaca-banner $(RUN)/summary.md
	@cat $(RUN)/summary.md

alpaca-banner:
	@mkdir -p $(RUN)
	@if [ -n "$(LORA)" ]; then echo "alpaca: LORA=$(LORA): LoRA training is not available yet (the trainer has no --lora flags); unset LORA" >&2; exit 2; fi
	@echo "make alpaca: RUN=$(RUN)" >&2
	@echo "  data      $(if $(DATA),DATA=$(DATA),teacher $(if $(BASE_URL),BASE_URL=$(BASE_URL) TEACHER_MODEL=$(TEACHER_MODEL),teachersim on 127.0.0.1 (pool $(TEACHER_POOL))) NUM_INSTRUCTIONS=$(NUM_INSTRUCTIONS))" >&2
	@echo "  seeds     SEEDS=$(SEEDS) THRESHOLD=$(THRESHOLD) HELDOUT_EVERY=$(HELDOUT_EVERY) TEMPLATE=$(TEMPLATE)" >&2
	@echo "  model     $(if $(BASE),BASE=$(BASE),from scratch: HIDDEN=$(HIDDEN) LAYERS=$(LAYERS) HEADS=$(HEADS)/$(KV_HEADS) INTERMEDIATE=$(INTERMEDIATE) VOCAB=$(VOCAB)$(if $(TOKENIZER), TOKENIZER=$(TOKENIZER)))" >&2
	@echo "  training  $(STEPFLAGS) BATCH=$(BATCH) (MICRO=$(MICRO)) SEQ_LEN=$(SEQ_LEN) LR=$(LR) WARMUP=$(WARMUP) DEVICE=$(DEVICE) SAVE_EVERY=$(SAVE_EVERY)" >&2
	@if [ "$(MAX_STEPS)" != 0 ] && [ -z "$(BASE)" ]; then \
	  awk -v s=$(MAX_STEPS) -v b=$(BATCH) -v r=$(EST_TOKS) 'BEGIN{t=s*b*126/r; printf "  estimate  training stage about %d min (%d steps x %d examples of ~126 tokens at ~%d tokens/s on 2 cores)\n", t/60+0.5, s, b, r}' >&2; \
	fi

# 1. data ------------------------------------------------------------------
$(RUN)/data.jsonl:
	@mkdir -p $(RUN)
	@if [ -n "$(DATA)" ]; then \
	  $(STAGE) data ln -sf $(abspath $(DATA)) $@; \
	else \
	  $(STAGE) data env BIN=$(ALPACA_BIN) bash scripts/alpaca/teacher.sh $(RUN) "$(SEEDS)" "$(BASE_URL)" "$(TEACHER_MODEL)" "$(TEACHER_POOL)" $(NUM_INSTRUCTIONS) $@; \
	fi

# 2. dedup against the seed tasks and within the data (ROUGE-L, greedy) ------
$(RUN)/dedup.jsonl: $(RUN)/data.jsonl
	@$(STAGE) dedup sh -c '$(ALPACA_BIN)/rougefilter --against $(SEEDS) --threshold $(THRESHOLD) --stats --rejected $(RUN)/rejected.jsonl $(RUN)/data.jsonl -o $@'

# 3. split: every HELDOUT_EVERY-th record is held out ------------------------
$(RUN)/train.jsonl $(RUN)/heldout.jsonl &: $(RUN)/dedup.jsonl
	@$(STAGE) split sh -c "awk 'NR % $(HELDOUT_EVERY) != 0' $< > $(RUN)/.train.tmp && awk 'NR % $(HELDOUT_EVERY) == 0' $< > $(RUN)/.heldout.tmp && mv $(RUN)/.heldout.tmp $(RUN)/heldout.jsonl && mv $(RUN)/.train.tmp $(RUN)/train.jsonl"

# 4. prompt templates --------------------------------------------------------
$(RUN)/%.prompts.jsonl: $(RUN)/%.jsonl
	@$(STAGE) format-$* $(ALPACA_BIN)/promptfmt --quiet --template $(TEMPLATE) $< -o $@

# 5. tokenizer (from scratch only) and token streams -------------------------
$(RUN)/tokenizer.model: $(RUN)/train.prompts.jsonl
	@$(STAGE) tokenizer $(ALPACA_BIN)/tokenize train --quiet --vocab-size $(VOCAB) --input $< -o $@

$(RUN)/%.bin: $(RUN)/%.prompts.jsonl $(TOKMODEL)
	@$(STAGE) tokenize-$* $(ALPACA_BIN)/tokenize --model $(TOKMODEL) --max-len $(SEQ_LEN) $< -o $@

# 6. the starting model ------------------------------------------------------
$(RUN)/base/config.json: $(TOKMODEL)
	@printf '{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,"vocab_size":%d,"max_position_embeddings":%d,"rms_norm_eps":1e-5,"initializer_range":0.02,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}\n' \
	  $(HIDDEN) $(INTERMEDIATE) $(LAYERS) $(HEADS) $(KV_HEADS) $(VOCAB) $(SEQ_LEN) > $(RUN)/model-config.json
	@$(STAGE) init $(ALPACA_BIN)/trainer init --config $(RUN)/model-config.json --tokenizer $(TOKMODEL) --out $(RUN)/base --seed $(SEED)

# 7. training: resumes from $(RUN)/tuned/checkpoint-* when a run was cut -----
$(RUN)/tuned/config.json: $(RUN)/train.bin $(if $(BASE),,$(RUN)/base/config.json)
	@$(STAGE) train env BIN=$(ALPACA_BIN) bash scripts/alpaca/train.sh $(RUN) $(MODEL0) \
	  $(STEPFLAGS) --device $(DEVICE) --batch-size $(BATCH) --micro-batch $(MICRO) --seq-len $(SEQ_LEN) \
	  --lr $(LR) --warmup-steps $(WARMUP) --save-every $(SAVE_EVERY) --save-limit 1 --seed $(SEED)

$(RUN)/loss.png: $(RUN)/tuned/config.json
	@$(STAGE) plot $(ALPACA_BIN)/trainer plot --metrics $(RUN)/metrics.jsonl -o $@

# 8. held-out loss of the starting and the tuned model -----------------------
$(RUN)/eval.json: $(RUN)/tuned/config.json $(RUN)/heldout.bin
	@$(STAGE) eval sh -c '{ $(ALPACA_BIN)/trainer eval --quiet --model $(MODEL0) --data $(RUN)/heldout.bin --label base && \
	  $(ALPACA_BIN)/trainer eval --quiet --model $(RUN)/tuned --data $(RUN)/heldout.bin --label tuned; } > $(RUN)/.eval.tmp && mv $(RUN)/.eval.tmp $@'

# 9. a few held-out instructions answered by the tuned model -----------------
$(RUN)/answers.jsonl: $(RUN)/tuned/config.json $(RUN)/heldout.jsonl
	@$(STAGE) generate sh -c 'head -n $(ASK) $(RUN)/heldout.jsonl | $(ALPACA_BIN)/generate --quiet --model $(RUN)/tuned --template $(TEMPLATE) \
	  --temperature 0 --max-new-tokens $(MAX_NEW) --seed $(SEED) -o $@'

# 10. publish the tuned weights as a diff, recover and verify them -----------
$(RUN)/diff/weightdiff.json: $(RUN)/tuned/config.json
	@$(STAGE) weightdiff sh -c 'rm -rf $(RUN)/recovered $(RUN)/diff && \
	  $(ALPACA_BIN)/weightdiff make --raw $(MODEL0) --tuned $(RUN)/tuned --out $(RUN)/diff && \
	  $(ALPACA_BIN)/weightdiff recover --raw $(MODEL0) --diff $(RUN)/diff --out $(RUN)/recovered && \
	  $(ALPACA_BIN)/weightdiff verify --model $(RUN)/recovered --diff $(RUN)/diff'

# 11. the summary ------------------------------------------------------------
$(RUN)/summary.md: $(RUN)/loss.png $(RUN)/eval.json $(RUN)/answers.jsonl $(RUN)/diff/weightdiff.json
	@bash scripts/alpaca/summary.sh $(RUN) $(TOKMODEL) > $(RUN)/.summary.tmp && mv $(RUN)/.summary.tmp $@

alpaca-clean:
	rm -rf $(RUN)

# Set-up and the two everyday jobs. Everything installs into .venv; torch is pinned by constraints.txt.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DEEPREL_DATA_DIR ?= $(abspath ../shared)
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test benchmark

$(BIN)/deeprel: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/deeprel

# Train a small CoNLL04 model, evaluate it on the test set, and predict on a sentence.
demo: setup
	rm -rf runs/demo
	$(BIN)/deeprel train configs/tiny.toml --output runs/demo --quiet
	$(BIN)/deeprel evaluate runs/demo/model $(DEEPREL_DATA_DIR)/datasets/conll04/conll04_test.json --output runs/demo/test_scores.json
	$(BIN)/deeprel predict runs/demo/model --text "John Smith, a lawyer at Acme Corp., lives in Boston. He was born in Paris."

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest

# The report reads docs/results/speed_*.json: NAME tells the runs apart (e.g. frozen, finetuned).
NAME ?= frozen
benchmark: setup
	@test -n "$(MODEL)" || { echo "usage: make benchmark MODEL=<deeprel model directory> [NAME=frozen]"; exit 2; }
	$(BIN)/python benchmarks/speed.py --model $(MODEL) --output docs/results/speed_$(NAME).json

# deeprel extract beside a spaCy NER pipeline (blank English + NER trained by spaCy's CLI on CoNLL04):
# sentences/second on this CPU and NER F1 on the test set. The spaCy model is trained once, into runs/spacy-ner.
.PHONY: spacy-benchmark
SPACY_NER ?= runs/spacy-ner
REPEAT ?= 10
SPACY_RESULT ?= docs/results/extract_vs_spacy.json
spacy-benchmark: setup
	@test -n "$(MODEL)" || { echo "usage: make spacy-benchmark MODEL=<deeprel model directory>"; exit 2; }
	test -d $(SPACY_NER)/model-best || $(BIN)/python benchmarks/spacy_ner/prepare.py --output $(SPACY_NER)/corpus
	test -d $(SPACY_NER)/model-best || $(BIN)/python -m spacy train benchmarks/spacy_ner/config.cfg \
		--output $(SPACY_NER) --gpu-id -1 --nlp.lang en \
		--paths.train $(SPACY_NER)/corpus/train.spacy --paths.dev $(SPACY_NER)/corpus/dev.spacy
	$(BIN)/python benchmarks/extract_vs_spacy.py --model $(MODEL) --spacy-model $(SPACY_NER)/model-best \
		--repeat $(REPEAT) --output $(SPACY_RESULT)

# phyloclr: `make demo` runs the main job end to end on data/, `make test` runs every check.
# Both set up .venv first. Torch: a CPU build where there is no NVIDIA GPU (override TORCH_SPEC).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.1,<3' || echo 'torch==2.13.0')
DEMO_OUT ?= demo_out

DEVSETS ?= $(HOME)/.cache/phyloclr/devsets
BENCH_OUT ?= bench_out

.PHONY: setup test lint demo clean bench-protein faults

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

demo: setup
	mkdir -p $(DEMO_OUT)
	$(BIN)/phyloclr families data/protein/seeds --out $(DEMO_OUT)/seed_families.tsv
	$(BIN)/phyloclr families data/protein/proteome/938293.PRJEB85.HG003687.faa \
		--hmm-db data/protein/PF02826.hmm --out $(DEMO_OUT)/proteome_families.tsv
	rm -rf $(DEMO_OUT)/run
	$(BIN)/phyloclr pretrain data/protein/seeds --config configs/cpu-small.yaml \
		--time-budget 60s --out $(DEMO_OUT)/run
	tail -n 3 $(DEMO_OUT)/run/metrics.csv
	rm -f $(DEMO_OUT)/proteome.h5
	$(BIN)/phyloclr embed data/protein/proteome/938293.PRJEB85.HG003687.faa \
		--out $(DEMO_OUT)/proteome.h5
	$(BIN)/python -c "import h5py; f = h5py.File('$(DEMO_OUT)/proteome.h5'); \
		print('embeddings', f['embeddings'].shape, 'complete', bool(f.attrs['complete']))"
	rm -f $(DEMO_OUT)/seeds.h5 $(DEMO_OUT)/seeds.fa $(DEMO_OUT)/seeds_labels.csv
	$(BIN)/python -m phyloclr.demo_data data/protein/seeds $(DEMO_OUT)/seeds.fa $(DEMO_OUT)/seeds_labels.csv
	$(BIN)/phyloclr embed $(DEMO_OUT)/seeds.fa --out $(DEMO_OUT)/seeds.h5
	$(BIN)/phyloclr evaluate $(DEMO_OUT)/seeds.h5 --labels $(DEMO_OUT)/seeds_labels.csv \
		--plot $(DEMO_OUT)/seeds_map.png --json $(DEMO_OUT)/seeds_scores.json
	$(BIN)/phyloclr search $(DEMO_OUT)/seeds.fa --db $(DEMO_OUT)/seeds.h5 --top 10 --realign \
		--db-fasta $(DEMO_OUT)/seeds.fa --out $(DEMO_OUT)/seeds_hits.tsv
	$(BIN)/phyloclr search data/protein/proteome/938293.PRJEB85.HG003687.faa \
		--db $(DEMO_OUT)/seeds.h5 --labels $(DEMO_OUT)/seeds_labels.csv \
		--out $(DEMO_OUT)/proteome_transfer.tsv
	$(BIN)/phyloclr cluster data/dna/Influenza-A.fas --n-clusters 5 \
		--labels data/dna/Influenza-A_labels.csv --steps 150 --runs 1 --out $(DEMO_OUT)/flu

# The fault harness in full (benchmarks/RESULTS.md, "Faults"): 20 SIGKILLs at random moments
# per command, 3,000 fuzzed inputs per reader, full disks (tmpfs mounts: needs root) and two
# runs sharing a cache. `make test` runs its fast case (1 kill per command, 150 inputs).
faults: setup
	mkdir -p $(BENCH_OUT)
	rm -f $(BENCH_OUT)/faults.jsonl
	PHYLOCLR_KILLS=20 PHYLOCLR_FUZZ_EXAMPLES=3000 \
		PHYLOCLR_FAULT_REPORT=$(abspath $(BENCH_OUT))/faults.jsonl \
		$(BIN)/python -m pytest -q tests/test_kills.py tests/test_faults.py tests/test_fuzz.py
	cat $(BENCH_OUT)/faults.jsonl

# The protein retrieval harness (benchmarks/RESULTS.md, "Protein retrieval"): build the
# development sets, pretrain the default config on each transductive corpus (20 min each), score
# every row on every set (phmmer included: ~20 min more), print the table; then split each
# transductive set's mAP into the pairs MMseqs2 links and those it cannot (homology_split).
bench-protein: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m benchmarks.protein_devsets --out $(DEVSETS)
	mkdir -p $(BENCH_OUT)
	rm -rf $(BENCH_OUT)/default $(BENCH_OUT)/default-go-process
	$(BIN)/phyloclr pretrain $(DEVSETS)/go-function/corpus.fasta --out $(BENCH_OUT)/default
	$(BIN)/phyloclr pretrain $(DEVSETS)/go-process/corpus.fasta --out $(BENCH_OUT)/default-go-process
	$(BIN)/python -m benchmarks.bench_protein --sets $(DEVSETS) --phmmer \
		--model phyloclr-pretrain-default=$(BENCH_OUT)/default --out $(BENCH_OUT)/protein.jsonl
	$(BIN)/python -m benchmarks.bench_protein --sets $(DEVSETS) --only go-process --models-only \
		--model phyloclr-pretrain-default-go-process=$(BENCH_OUT)/default-go-process \
		--out $(BENCH_OUT)/protein.jsonl
	$(BIN)/python benchmarks/summarise.py protein $(BENCH_OUT)/protein.jsonl
	$(BIN)/python -m benchmarks.homology_split --set $(DEVSETS)/go-function --kmer \
		--model default=$(BENCH_OUT)/default --no-memory-too --out $(BENCH_OUT)/split.jsonl
	$(BIN)/python -m benchmarks.homology_split --set $(DEVSETS)/go-process --kmer \
		--model default=$(BENCH_OUT)/default-go-process --no-memory-too --out $(BENCH_OUT)/split.jsonl

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache

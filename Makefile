# ltmpq: `make book` renders the book from committed results, `make test` runs the tests.
# Both create or refresh the virtual environment (.venv) when it is missing or stale.

PROFILE ?= cpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_mathjax/mathjax/tex-chtml.js
# the chapters, then the landing page (it summarises them)
CHAPTERS := $(patsubst notebooks/%.py,%,$(sort $(wildcard notebooks/[0-9]*.py)) notebooks/landing.py)
EXECUTED := $(patsubst %,book/chapters/%.ipynb,$(CHAPTERS))
PKG_SRC := $(wildcard ltmpq/*.py ltmpq/*/*.py)
RESULTS := $(wildcard results/$(PROFILE)/*/*.json)
PROFILE_STAMP := book/chapters/.profile-$(PROFILE)

.PHONY: help venv test test-fast lint book check-book words glue-dump runs chapter status bench clean recipe-search
.DELETE_ON_ERROR:

help:
	@echo "make book      render the book (PROFILE=$(PROFILE)) from committed results into book/_build/html"
	@echo "make test      lint + unit tests + every notebook in the smoke profile + browser check"
	@echo "make runs      produce missing results of PROFILE (trains; RUN_ARGS='--if 0.01 --seed 0')"
	@echo "make chapter   run one chapter with your parameters: CHAPTER=01_evaluation PARAMS=\"-p seeds '[0, 1]'\""
	@echo "make status    which results of PROFILE exist"
	@echo "make bench     training throughput against raw forward+backward; chapter 4 sweep reuse vs naive"
	@echo "make words     words per page of the built book (prose, tables, collapsed detail)"
	@echo "make glue-dump every glued value and table cell of the executed book as JSON (GLUE_OUT=...);"
	@echo "               compare two with: .venv/bin/python -m ltmpq.tools.gluecheck compare A.json B.json"

# The venv is rebuilt when pyproject.toml changes (the stamp is older) or it is missing.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,test]'
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check ltmpq tests notebooks
	$(VENV)/bin/ruff format --check ltmpq tests notebooks

# One worker per core; a test file stays on one worker, so the smoke book is built once.
test: $(STAMP) $(MATHJAX) lint
	$(PY) -m pytest -n auto --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n auto --dist loadfile

# MathJax 3 from the npm registry, served by the book itself (no CDN at reading time).
$(MATHJAX):
	mkdir -p build/npm
	cd build/npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null
	tar -xzf build/npm/mathjax-$(MATHJAX_VERSION).tgz -C build/npm
	rm -rf book/_mathjax && mkdir -p book/_mathjax
	cp -r build/npm/package/es5 book/_mathjax/mathjax
	test -f $@

$(PROFILE_STAMP):
	mkdir -p book/chapters
	rm -f book/chapters/.profile-*
	touch $@

# Papermill executes each chapter (never training: compute=False) into book/chapters/; it
# re-runs when the chapter, the package, the results or the profile change.
book/chapters/%.ipynb: notebooks/%.py $(PKG_SRC) $(RESULTS) $(PROFILE_STAMP) $(STAMP)
	$(PY) -m ltmpq.tools.execute $< $@ -p profile $(PROFILE) -p compute False

book: $(STAMP) $(MATHJAX) $(EXECUTED)
	$(VENV)/bin/jupyter-book build book --warningiserror --nitpick --keep-going --quiet
	@echo "book: file://$(CURDIR)/book/_build/html/index.html"

# The book's numbers as data, to check that a change leaves them alone (ltmpq.tools.gluecheck).
GLUE_OUT ?= build/glue-$(PROFILE).json
glue-dump: $(STAMP) $(EXECUTED)
	$(PY) -m ltmpq.tools.gluecheck dump book/chapters $(GLUE_OUT)

# Words per page of the built book: prose, visible tables, collapsed detail (code not counted).
words: $(STAMP)
	$(PY) -m ltmpq.tools.wordcount book/_build/html

check-book: $(STAMP)
	$(PY) -m ltmpq.tools.bookcheck book/_build/html --screenshots build/screenshots

runs: $(STAMP)
	$(PY) -m ltmpq run --profile $(PROFILE) $(RUN_ARGS)

status: $(STAMP)
	$(PY) -m ltmpq status --profile $(PROFILE)

# The v2 recipe search (appendix "Recipe search"): each candidate in its own one-thread process.
recipe-search: $(STAMP)
	$(PY) -m ltmpq.recipe --profile $(PROFILE) names | tr '\n' '\0' | xargs -0 -P 2 -I{} $(PY) -m ltmpq.recipe --profile $(PROFILE) run --quiet --only {}

# One chapter with your own parameters (values are YAML), e.g.
#   make chapter CHAPTER=01_evaluation PROFILE=smoke PARAMS="-p compute True -p seeds '[0, 1]'"
chapter: $(STAMP)
	@test -n "$(CHAPTER)" || (echo "set CHAPTER to one of: $(CHAPTERS)" && exit 2)
	@test -f notebooks/$(CHAPTER).py || (echo "unknown CHAPTER=$(CHAPTER); choose one of: $(CHAPTERS)" && exit 2)
	$(PY) -m ltmpq.tools.execute notebooks/$(CHAPTER).py build/chapter/$(CHAPTER).ipynb -p profile $(PROFILE) $(PARAMS)

bench: $(STAMP)
	$(PY) -m ltmpq bench

clean:
	rm -rf build book/_build book/chapters

# nctutor: the two commands of the README.
#   make book   build the book (executes every page at $NCTUTOR_PROFILE, default smoke)
#   make test   lint + tests (the tests include a full book build)
#   make book-instructor   the book with every exercise's solution shown open (_build/instructor)
# Both create or reuse the virtual environment $(VENV) and install what is needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NCTUTOR_PROFILE ?= smoke

.PHONY: book book-instructor test lint install clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	@if [ -n "$$CI" ]; then rm -rf _build/.jupyter_cache; fi
	$(BIN)/jupyter-book build . -W --keep-going

book-instructor: $(STAMP)
	NCTUTOR_INSTRUCTOR=1 $(BIN)/jupyter-book build . -W --keep-going --path-output _build/instructor

lint: $(STAMP)
	$(BIN)/ruff check nctutor tests
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow" -q

clean:
	rm -rf _build

# nctutor: the two commands of the README.
#   make book   build the book (executes every page at $NCTUTOR_PROFILE, default smoke)
#   make test   lint + tests (the tests include a full book build)
#   make book-instructor   the book with every exercise's solution shown open (_build/instructor)
# Both create or reuse the virtual environment $(VENV) and install what is needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# MathJax 3, served from the book's own _static so the math renders offline (see _config.yml):
# fetched from the npm registry at install time (about 2 MB, not committed; .gitignore).
MATHJAX_VERSION := 3.2.2
MATHJAX_DIR := book/_vendor/mathjax
STATIC_MATHJAX := $(MATHJAX_DIR)/.mathjax-$(MATHJAX_VERSION)
export NCTUTOR_PROFILE ?= smoke

.PHONY: book book-instructor test lint install clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Only what the book needs: the TeX-to-HTML bundle, its fonts and the TeX extensions that
# it loads on demand (\require, autoload). Built in a temporary folder, then moved into place.
$(STATIC_MATHJAX):
	@command -v npm >/dev/null || { echo "make: npm is needed to fetch MathJax (install Node.js)"; exit 1; }
	rm -rf $(MATHJAX_DIR) $(MATHJAX_DIR).tmp
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null) && \
	tar xzf "$$tmp/mathjax-$(MATHJAX_VERSION).tgz" -C "$$tmp" package/es5/tex-chtml.js \
	    package/es5/output/chtml/fonts/woff-v2 package/es5/input/tex/extensions && \
	mkdir -p $(dir $(MATHJAX_DIR)) && mv "$$tmp/package/es5" $(MATHJAX_DIR).tmp && \
	touch $(MATHJAX_DIR).tmp/$(notdir $(STATIC_MATHJAX)) && mv $(MATHJAX_DIR).tmp $(MATHJAX_DIR)

install: $(STAMP) $(STATIC_MATHJAX)

book: $(STAMP) $(STATIC_MATHJAX)
	@if [ -n "$$CI" ]; then rm -rf _build/.jupyter_cache; fi
	$(BIN)/jupyter-book build . -W --keep-going

book-instructor: $(STAMP) $(STATIC_MATHJAX)
	NCTUTOR_INSTRUCTOR=1 $(BIN)/jupyter-book build . -W --keep-going --path-output _build/instructor

lint: $(STAMP)
	$(BIN)/ruff check nctutor tests
	$(BIN)/lint-imports

test: $(STAMP) $(STATIC_MATHJAX) lint
	$(BIN)/python -m pytest -m "not slow" -q

clean:
	rm -rf _build

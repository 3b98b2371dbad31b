# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
HOST   ?= 127.0.0.1
FLASK  := $(BIN)/flask --app intake

.PHONY: run test lint typecheck security pytest install-server install-test migrate demo-key clean translations

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-server: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-server

# axe-core for the browser tests' accessibility audit (package.json; test-only, never served).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install-server: $(VENV)/.installed-server
install-test: $(VENV)/.installed-test node_modules/.installed

demo-key: install-server
	$(BIN)/python -m intake.demo

migrate: demo-key
	$(FLASK) db upgrade

## make run: set up everything on first use, then serve on http://$(HOST):$(PORT)
run: migrate
	$(FLASK) run --host $(HOST) --port $(PORT)

lint: install-test
	$(BIN)/ruff check intake tests bench wsgi.py
	$(BIN)/ruff format --check intake tests bench wsgi.py

typecheck: install-test
	$(BIN)/mypy

security: install-test
	$(BIN)/bandit -q -c pyproject.toml -r intake

pytest: install-test
	$(BIN)/pytest $(PYTEST_ARGS)

## make test: install the test extras, then lint, type-check, scan and run the whole suite
test: lint typecheck security pytest

## make translations: after changing a user-visible string. Extracts every string
## (templates, Python, the schema's vocabulary labels; see babel.cfg) into
## intake/translations/messages.pot, merges it into each language's messages.po
## (new strings come out empty or fuzzy: translate them, then remove "#, fuzzy"),
## and compiles the .mo files. Commit the .po and .mo files. Not part of run or test;
## tests/test_i18n.py fails while a string is untranslated or a .mo is stale.
TRANSLATIONS := intake/translations
translations: install-test
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext --no-location \
		--add-comments=TRANSLATORS: --project=intake --version=0.1.0 \
		-o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) \
		--ignore-obsolete --width=100
	$(BIN)/pybabel compile -d $(TRANSLATIONS) --statistics

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

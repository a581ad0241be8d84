# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.example.toml
STAMP := $(VENV)/.installed
# Four workers on two cores: most tests wait on sockets and processes, so two
# per core keep both busy. The module that shares one service stays on one.
TEST_WORKERS ?= -n 4 --dist loadgroup

.PHONY: run test screenshots docs lint bench reliability clean messages-extract messages-update messages-compile

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,docs,brokers]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@echo ""
	@echo "wagate is starting on http://127.0.0.1:8080 (sandbox provider, SQLite in ./wagate.db)."
	@echo "Try it from another terminal:"
	@echo "  $(BIN)/wagate simulate --config $(CONFIG) --from +34600000001 \"Hola\""
	@echo "  $(BIN)/wagate outbox --config $(CONFIG)"
	@echo ""
	$(BIN)/wagate serve --config $(CONFIG)

# Bytecode caches are written (into __pycache__/, ignored by git) even where
# PYTHONDONTWRITEBYTECODE is set, as in many container images: without them each
# worker and each `wagate` process a test starts compiles the code again.
test: $(STAMP)
	$(BIN)/ruff check bot handlers tests bench reliability tools
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q $(TEST_WORKERS) --durations=15

# The documentation site on http://127.0.0.1:8000 (docs/, mkdocs.yml).
# Its generated parts (CLI, configuration, emoji) are written anew from the code first.
docs: $(STAMP)
	$(BIN)/python -m tools.gen_docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The committed docs/screenshots/*.png, taken again by the browser tests
# (`make test` writes its screenshots to a temporary folder instead).
screenshots: $(STAMP)
	WAGATE_SCREENSHOTS=docs/screenshots WAGATE_TEST_BROWSER_REQUIRED=1 \
		$(BIN)/python -m pytest -q tests/test_ui_browser.py

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench,postgres,brokers]'
	$(BIN)/python -m bench

# Crash, forgery, fuzz and SSRF suites against the real service (docs/RELIABILITY.md).
reliability: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,reliability,postgres,brokers]'
	$(BIN)/python -m reliability

# i18n: keep locales/messages.pot current and the catalogs in step with it.
messages-extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ -o locales/messages.pot .

messages-update: messages-extract
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching

messages-compile: $(STAMP)
	$(BIN)/pybabel compile -d locales -D messages --statistics

clean:
	rm -rf $(VENV) wagate.db wagate.db-wal wagate.db-shm wagate.db.lock

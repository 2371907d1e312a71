# mod_rwsgi: build, serve, test and benchmark entry points. See README.md.
#
#   make / make build  cargo build --release, then copy the module to target/mod_rwsgi.so
#   make serve         install deps, build, serve examples/hello.wsgi on http://127.0.0.1:8000
#   make test          install deps, run the whole test suite (cargo test)
#   make bench         install deps, run bench/run.sh (see bench/README.md)
#   make wheel         build, then dist/mod_rwsgi-<version>-cpXY-cpXY-linux_<arch>.whl (module +
#                      rwsgi-express; see express/build_wheel.py)
#   make deb           build target/debian/libapache2-mod-rwsgi_<version>_<arch>.deb
#   make package-test  as root: build the .deb, apt-get install it, switch from mod_wsgi, serve a
#                      site with apache2ctl on 127.0.0.1, purge it; the machine is restored
#   make soak          install deps, run bench/soak.sh niced (1M requests per target, minutes)
#   make fuzz          fuzz the daemon protocol decoders for FUZZ_SECONDS (60) seconds; see
#                      docs/fuzzing.md
#   make deps          install the Debian packages (.ci/install-deps)

# rustup installs cargo into ~/.cargo/bin, which non-login shells may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo
MODULE := target/mod_rwsgi.so
# The Python the module is built against (.cargo/config.toml pins it too).
PYTHON ?= /usr/bin/python3

.PHONY: all build serve test bench soak wheel deb package-test fuzz deps clean
.NOTPARALLEL:

all: build

# Copy then rename, so that an Apache which has the old file mapped keeps running.
build:
	$(CARGO) build --release
	cp target/release/libmod_rwsgi.so $(MODULE).tmp
	chmod 0644 $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)
	@echo "built $(CURDIR)/$(MODULE)"

serve: deps build
	bash examples/serve.sh

test: deps
	$(CARGO) test

bench: deps
	bash bench/run.sh

wheel: build
	$(PYTHON) express/build_wheel.py dist

deb: deps
	bash packaging/deb/build.sh

package-test: deps
	bash packaging/package-test.sh

# Niced: the soak runs for minutes, and the machine may be shared.
soak: deps build
	RWSGI_MODULE=$(CURDIR)/$(MODULE) SOAK_COMMAND="make soak" nice -n 10 bash bench/soak.sh

# Stable Rust, no extra crates: a mutation fuzzer run as a test (docs/fuzzing.md).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --test fuzz_protocol -- --nocapture

deps:
	bash .ci/install-deps

clean:
	$(CARGO) clean

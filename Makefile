# libllmgpu - GNU make build. User-overridable: CC CXX CFLAGS LDFLAGS PREFIX DESTDIR
# LIBDIR INCLUDEDIR PKGCONFIGDIR INSTALL INSTALL_DATA. Project flags live in LG_*.
#   make            library (shared+static) and CLI into build/
#   make check      build and run every test (GPU suites run on whatever Vulkan
#                   device is found; lavapipe on a machine without a GPU)
#   make demo       build and generate from the bundled model
#   make deps       install the Debian packages (as root) or print the apt-get line
#   make SANITIZE=1 check   the same under ASan+UBSan (into build-san/)
#   make fuzz       every tests/fuzz/*.c under libFuzzer+ASan+UBSan for FUZZ_SECONDS each
#                   (into build-fuzz/); make check runs a few seconds each when clang works
#   make check-valgrind     the CPU-only suites under valgrind --leak-check=full
#   make check-tsan the suites tagged "threads" under ThreadSanitizer (into build-tsan/)

CC      ?= cc
CXX     ?= c++
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL ?= install
INSTALL_DATA ?= $(INSTALL) -m 644
CFLAGS  ?= -O2 -g
PYTHON  ?= python3

VERSION := $(shell sed -n 's/^\#define LLMGPU_VERSION_STRING "\(.*\)"/\1/p' include/llmgpu.h)
MAJOR   := $(shell sed -n 's/^\#define LLMGPU_VERSION_MAJOR \([0-9]*\)/\1/p' include/llmgpu.h)

ifneq ($(SANITIZE),)
  ifeq ($(SANITIZE),1)
    override SANITIZE := address,undefined
  endif
  B ?= build-san
  LG_SAN := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
  B ?= build
  LG_SAN :=
endif
# Python loading the ASan-built library: the ASan runtime must come first in the process
# (preloaded), and the interpreter's own allocations are not ours to leak-check.
ifneq ($(findstring address,$(SANITIZE)),)
  PY_SAN_ENV := LD_PRELOAD=$(shell $(CC) -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0
endif

LG_WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wvla -Wformat=2 -Wcast-qual -Wundef -Wwrite-strings
ifneq ($(WERROR),)
  LG_WARN += -Werror
endif
SHADERC_VERSION := $(shell pkg-config --modversion shaderc 2>/dev/null)
PKGS := vulkan libcjson libpcre2-8 libutf8proc libxxhash
LG_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -DLLMGPU_BUILD -Iinclude -Ilib \
             -I$(B)/gen -DLG_SHADERC_VERSION='"$(SHADERC_VERSION)"' $(LG_WARN) $(LG_SAN) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ARCHDIR := $(shell $(CC) -print-multiarch 2>/dev/null)
SLIB := /usr/lib/$(ARCHDIR)
# bookworm's libshaderc.so.1 leaves glslang/SPIRV-Tools symbols undefined; link the
# combined archive with glslang's and SPIRV-Tools' archives (see shared/PLATFORM.md).
SHADERC_ARCHIVES := $(SLIB)/libshaderc_combined.a $(SLIB)/libglslang.a \
  $(SLIB)/libMachineIndependent.a $(SLIB)/libGenericCodeGen.a $(SLIB)/libSPIRV.a \
  $(SLIB)/libOSDependent.a $(SLIB)/libOGLCompiler.a $(SLIB)/libHLSL.a \
  $(SLIB)/libglslang-default-resource-limits.a $(SLIB)/libSPIRV-Tools-opt.a $(SLIB)/libSPIRV-Tools.a
SHADERC_LINK := -Wl,--start-group $(SHADERC_ARCHIVES) -Wl,--end-group
DEP_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lstdc++ -lpthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

LIB_SRCS := $(sort $(shell find lib -name '*.c'))
KERNELS  := $(sort $(wildcard kernels/*.comp kernels/*.glsl))
LIB_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRCS)) $(B)/obj/gen/kernels_embedded.o

SONAME  := libllmgpu.so.$(MAJOR)
SHLIB   := $(B)/libllmgpu.so.$(VERSION)
STLIB   := $(B)/libllmgpu.a
CLI     := $(B)/llmgpu

TEST_SUITE_SRCS := $(sort $(wildcard tests/check_*.c))
TEST_SRCS := tests/main.c $(TEST_SUITE_SRCS) $(sort $(wildcard tests/ref/*.c)) \
             $(sort $(wildcard tests/util/*.c))
TEST_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(TEST_SRCS))
TEST_BIN  := $(B)/tests/check_all
DEPS_STAMP := $(B)/.deps-ok

.PHONY: all lib examples fixtures check check-tsan fuzz-smoke fuzz-build check-valgrind check-install check-cpu check-gpu check-symbols check-header check-python \
        demo deps install install-pc uninstall clean golden format tidy fuzz

all: lib examples

lib: $(DEPS_STAMP) $(B)/libllmgpu.so $(STLIB)
examples: $(CLI) $(B)/simple

# ---- dependency check: name the missing Debian package, not a compiler error ----
DEB_PACKAGES := build-essential pkg-config libvulkan-dev libshaderc-dev glslang-dev spirv-tools \
                libcjson-dev libpcre2-dev libutf8proc-dev libxxhash-dev check mesa-vulkan-drivers
$(DEPS_STAMP):
	@missing=""; \
	for p in vulkan:libvulkan-dev libcjson:libcjson-dev libpcre2-8:libpcre2-dev \
	         libutf8proc:libutf8proc-dev libxxhash:libxxhash-dev check:check; do \
	  pkg-config --exists $${p%%:*} 2>/dev/null || missing="$$missing $${p#*:}"; done; \
	for a in $(SHADERC_ARCHIVES); do [ -f $$a ] || { case $$a in \
	  *shaderc*) missing="$$missing libshaderc-dev";; *SPIRV-Tools*) missing="$$missing spirv-tools";; \
	  *) missing="$$missing glslang-dev";; esac; }; done; \
	command -v pkg-config >/dev/null || missing="pkg-config $$missing"; \
	if [ -n "$$missing" ]; then \
	  echo "error: missing Debian packages:$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' ')"; \
	  echo "       run 'make deps' as root, or: apt-get install$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' ')"; \
	  exit 1; fi
	@mkdir -p $(@D) && touch $@

# Installs with apt-get as root, through sudo when there is one, else prints the line.
# npm only where there is none (a non-Debian nodejs conflicts with Debian's npm).
# clang + libclang-rt-dev (bookworm: libclang-rt-14-dev, which ships libclang_rt.fuzzer)
# for make fuzz; valgrind for make check-valgrind.
DEB_ALL = $(DEB_PACKAGES) vulkan-validationlayers python3 ca-certificates \
          clang libclang-rt-dev valgrind \
          $(if $(shell command -v npm),,npm)
deps:
	@if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y --no-install-recommends $(DEB_ALL); \
	elif command -v sudo >/dev/null; then sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y --no-install-recommends $(DEB_ALL); \
	else echo "run as root: apt-get install -y $(DEB_ALL)"; exit 1; fi

# ---- kernels embedded as C arrays ----
$(B)/tools/embed: tools/embed.c
	@mkdir -p $(@D)
	$(CC) -O1 -o $@ $<
$(B)/gen/kernels_embedded.c: $(KERNELS) $(B)/tools/embed
	@mkdir -p $(@D)
	$(B)/tools/embed $@ $(KERNELS)

# ---- objects ----
$(B)/obj/%.o: %.c $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(LG_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<
# Test code: suites are declared through the generated list, not a header.
$(B)/obj/tests/%.o: tests/%.c $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(LG_CFLAGS) -Itests/util -Itests $(shell pkg-config --cflags check) -Wno-missing-prototypes \
	  $(CFLAGS) -MMD -MP -c -o $@ $<
$(B)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(LG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(SHLIB): $(LIB_OBJS) lib/libllmgpu.map
	$(CC) -shared -o $@ $(LIB_OBJS) -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libllmgpu.map \
	  -Wl,--exclude-libs,ALL -Wl,-z,defs $(LG_SAN) $(LDFLAGS) $(SHADERC_LINK) $(DEP_LIBS)
$(B)/$(SONAME): $(SHLIB)
	ln -sf $(notdir $<) $@
$(B)/libllmgpu.so: $(B)/$(SONAME)
	ln -sf $(SONAME) $@
$(STLIB): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

# The CLI and example link the shared library, found next to them.
$(CLI): $(B)/obj/examples/llmgpu.o $(B)/libllmgpu.so
	$(CC) -o $@ $< -L$(B) -lllmgpu -Wl,-rpath,'$$ORIGIN' $(LG_SAN) $(LDFLAGS) -lm
$(B)/simple: $(B)/obj/examples/simple.o $(B)/libllmgpu.so
	$(CC) -o $@ $< -L$(B) -lllmgpu -Wl,-rpath,'$$ORIGIN' $(LG_SAN) $(LDFLAGS)

# ---- tests: one Check binary; suites found from tests/check_<name>.c ----
$(B)/gen/suites.h: $(TEST_SUITE_SRCS)
	@mkdir -p $(@D)
	@for f in $(TEST_SUITE_SRCS); do n=$${f#tests/check_}; echo "LG_SUITE($${n%.c})"; done > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp
$(B)/obj/tests/main.o: $(B)/gen/suites.h
$(TEST_BIN): $(TEST_OBJS) $(STLIB)
	@mkdir -p $(@D)
	$(CC) -o $@ $(TEST_OBJS) $(STLIB) $(LG_SAN) $(LDFLAGS) $(SHADERC_LINK) $(CHECK_LIBS) $(DEP_LIBS)

# A measurement tool (tests/tools/gemm_bench.c): one prefill GEMM per tile configuration.
$(B)/gemm_bench: $(B)/obj/tests/tools/gemm_bench.o $(STLIB)
	$(CC) -o $@ $< $(STLIB) $(LG_SAN) $(LDFLAGS) $(SHADERC_LINK) $(DEP_LIBS)

# CPU suites fork (crash isolation, timeouts); GPU suites run unforked (a Vulkan device
# must not cross fork()) under an outer timeout because Check's timeouts need fork.
LG_TEST_ENV := LLMGPU_TEST_DATA=$(CURDIR)/tests LLMGPU_TEST_TMP=$(CURDIR)/$(B)/tmp \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
  VK_LOADER_DISABLE_DYNAMIC_LIBRARY_UNLOADING=1
# Sanitized code runs several times slower (and LSan scans each forked test at exit):
# Check's per-test timeouts (4 s default) stretch so a loaded machine does not time out
# the CPU suites' small tests.
# The GPU suites' outer timeout (seconds) stretches likewise.
LG_GPU_TIMEOUT := 1500
ifneq ($(SANITIZE),)
  LG_TEST_ENV += CK_TIMEOUT_MULTIPLIER=10
  LG_GPU_TIMEOUT := 7200
endif
# Real tokenizer files (Llama 2, Llama 3, Qwen3) for the parity tests, pinned by sha256.
fixtures:
	@sh tests/tools/fetch_tokenizers.sh
# The suites' scratch (temporary models and files, ~80 MB a run) is kept for inspection
# until the next full run removes it.
check: all $(TEST_BIN) check-symbols check-header fixtures
	@rm -rf $(B)/tmp && mkdir -p $(B)/tmp
	$(LG_TEST_ENV) CK_EXCLUDE_TAGS=gpu $(TEST_BIN)
	$(LG_TEST_ENV) CK_FORK=no CK_INCLUDE_TAGS=gpu timeout $(LG_GPU_TIMEOUT) $(TEST_BIN)
	$(MAKE) --no-print-directory check-examples check-install check-readme
	@if $(FUZZ_WORKS); then $(MAKE) --no-print-directory fuzz-smoke; \
	else echo "fuzz-smoke: skipped (no clang with libFuzzer here; 'make deps' installs it)"; fi
	@if [ -d bindings/python/tests ]; then $(MAKE) --no-print-directory check-python; fi
	@if [ -n "$(SANITIZE)" ]; then echo "check-tsan: skipped (SANITIZE=$(SANITIZE) build)"; \
	elif $(TSAN_WORKS); then $(MAKE) --no-print-directory check-tsan; \
	else echo "check-tsan: skipped ($(CC) cannot build and run a -fsanitize=thread program here)"; fi
check-cpu: $(TEST_BIN)
	@mkdir -p $(B)/tmp
	$(LG_TEST_ENV) CK_EXCLUDE_TAGS=gpu $(TEST_BIN)
check-gpu: $(TEST_BIN)
	@mkdir -p $(B)/tmp
	$(LG_TEST_ENV) CK_FORK=no CK_INCLUDE_TAGS=gpu timeout $(LG_GPU_TIMEOUT) $(TEST_BIN)
check-examples: $(CLI)
	@sh tests/cli_test.sh $(B)
check-python: lib
	cd bindings/python && $(PY_SAN_ENV) LLMGPU_LIBRARY=$(CURDIR)/$(B)/$(SONAME) $(PYTHON) -m unittest discover -s tests -v

# README's C example compiles as written (warnings are errors) and runs on the demo model.
check-readme: lib
	@awk '/^```c$$/{f=1;next} /^```$$/{if(f)exit} f' README.md > $(B)/tmp/readme_example.c
	$(CC) -std=c11 -Wall -Wextra -Werror -Iinclude $(B)/tmp/readme_example.c -L$(B) -lllmgpu \
	  -Wl,-rpath,$(CURDIR)/$(B) $(LG_SAN) -o $(B)/tmp/readme_example
	@$(B)/tmp/readme_example > $(B)/tmp/readme_example.out && [ -s $(B)/tmp/readme_example.out ] && \
	  echo "check-readme: ok (README's C example builds and generates: $$(head -c 60 $(B)/tmp/readme_example.out)...)"
	@awk '/^```python$$/{f=1;next} /^```$$/{if(f)exit} f' README.md > $(B)/tmp/readme_example.py
	@$(PY_SAN_ENV) LLMGPU_LIBRARY=$(CURDIR)/$(B)/$(SONAME) PYTHONPATH=$(CURDIR)/bindings/python \
	  $(PYTHON) $(B)/tmp/readme_example.py > $(B)/tmp/readme_example_py.out && \
	  [ -s $(B)/tmp/readme_example_py.out ] && \
	  echo "check-readme: ok (README's Python example runs: $$(head -c 60 $(B)/tmp/readme_example_py.out)...)"

# Install into a staging DESTDIR, build examples/simple.c with nothing but pkg-config,
# run it on a tiny model, uninstall, and require that nothing is left behind.
check-install: lib $(CLI)
	@d=$(CURDIR)/$(B)/tmp/install; rm -rf $$d; \
	$(MAKE) --no-print-directory install DESTDIR=$$d PREFIX=/usr/local >/dev/null && \
	PKG_CONFIG_SYSROOT_DIR=$$d PKG_CONFIG_PATH=$$d/usr/local/lib/pkgconfig \
	  sh -c '$(CC) $(LG_SAN) examples/simple.c $$(pkg-config --cflags --libs llmgpu) -o '$$d'/app' && \
	LD_LIBRARY_PATH=$$d/usr/local/lib $$d/app $(B)/tmp/cli/m hello >/dev/null && \
	rm -f $$d/app && $(MAKE) --no-print-directory uninstall DESTDIR=$$d PREFIX=/usr/local >/dev/null && \
	left=$$(find $$d -type f -o -type l) && [ -z "$$left" ] || { echo "check-install: failed ($$left)"; exit 1; }; \
	echo "check-install: ok (install, pkg-config build, run, uninstall leaves nothing)"

# Only llmgpu_ symbols may be exported, and every one must be declared in the header.
check-symbols: $(SHLIB)
	@nm -D --defined-only $(SHLIB) | awk '$$2 ~ /[TDBRV]/ {print $$3}' | sed 's/@.*//' | sort -u > $(B)/exported.txt; \
	grep 'LLMGPU_API' include/llmgpu.h | grep -o 'llmgpu_[a-z0-9_]*(' | tr -d '(' | sort -u > $(B)/declared.txt; \
	bad=$$(grep -v '^llmgpu_' $(B)/exported.txt || true); \
	if [ -n "$$bad" ]; then echo "check-symbols: non-llmgpu_ exports:"; echo "$$bad" | head; exit 1; fi; \
	if ! cmp -s $(B)/exported.txt $(B)/declared.txt; then \
	  echo "check-symbols: exported and declared functions differ (< exported only, > declared only):"; \
	  diff $(B)/exported.txt $(B)/declared.txt | grep '^[<>]'; exit 1; fi; \
	echo "check-symbols: ok ($$(wc -l < $(B)/exported.txt) functions, all llmgpu_, all declared)"
# The public header compiles alone as C99 and as C++.
check-header:
	@printf '#include "llmgpu.h"\nint main(void){return llmgpu_version_number()==0;}\n' > $(B)/hdr.c
	$(CC) -std=c99 -Wall -Wextra -Wpedantic -Werror -Iinclude -fsyntax-only $(B)/hdr.c
	$(CXX) -x c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -Iinclude -fsyntax-only $(B)/hdr.c

# ---- fuzzing: every tests/fuzz/<name>.c is a libFuzzer target ----
# The library is compiled once with -fsanitize=fuzzer-no-link into an archive; each
# target links what it uses from it. Seeds: tests/fuzz/corpus/<name> or
# tests/fuzz/corpus_<name> (read only); new inputs go to build-fuzz/corpus/<name>,
# crashes to build-fuzz/artifacts/. Dictionary: tests/fuzz/<name>.dict, else
# FUZZ_DICT_<name>. FUZZ_SECONDS per target (make fuzz), FUZZ_SMOKE_SECONDS (make check).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 4
FB := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -DLLMGPU_BUILD -Iinclude -Ilib -I$(FB)/gen \
               -DLG_SHADERC_VERSION='"$(SHADERC_VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/*.c))
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRCS))
FUZZ_BINS := $(patsubst %,$(FB)/fuzz_%,$(FUZZ_NAMES))
FUZZ_LIB_OBJS := $(patsubst %.c,$(FB)/obj/%.o,$(LIB_SRCS)) $(FB)/obj/gen/kernels_embedded.o
FUZZ_DICT_checkpoint := tests/fuzz/config.dict
# Does $(FUZZ_CC) link a libFuzzer target with ASan+UBSan? (Debian: clang, libclang-rt-dev)
FUZZ_WORKS = printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; return (int)(n & 0); }\n' \
  | $(FUZZ_CC) -x c -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1
fuzz_seeds = $(wildcard tests/fuzz/corpus/$(1) tests/fuzz/corpus_$(1))
fuzz_dict = $(firstword $(wildcard tests/fuzz/$(1).dict) $(FUZZ_DICT_$(1)))
# $(call fuzz_run,name,seconds): one bounded run, non-zero on any finding
fuzz_run = mkdir -p $(FB)/corpus/$(1) $(FB)/artifacts && \
  TMPDIR=$${FUZZ_TMPDIR:-$$([ -w /dev/shm ] && echo /dev/shm || echo /tmp)} ASAN_OPTIONS=detect_leaks=1 $(FB)/fuzz_$(1) -max_total_time=$(2) \
  -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix=$(FB)/artifacts/$(1)- $(if $(call fuzz_dict,$(1)),-dict=$(call fuzz_dict,$(1))) \
  $(FB)/corpus/$(1) $(call fuzz_seeds,$(1))

$(FB)/gen/kernels_embedded.c: $(KERNELS) $(B)/tools/embed
	@mkdir -p $(@D)
	$(B)/tools/embed $@ $(KERNELS)
$(FB)/obj/%.o: %.c $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -MMD -MP -c -o $@ $<
$(FB)/obj/gen/%.o: $(FB)/gen/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
$(FB)/libllmgpu-fuzz.a: $(FUZZ_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^
$(FB)/fuzz_%: tests/fuzz/fuzz_%.c $(FB)/libllmgpu-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FB)/libllmgpu-fuzz.a \
	  $(SHADERC_LINK) $(DEP_LIBS)
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@fail=0; $(foreach n,$(FUZZ_NAMES),echo "fuzz: $(n) for $(FUZZ_SECONDS) s"; \
	  ( $(call fuzz_run,$(n),$(FUZZ_SECONDS)) ) > $(FB)/fuzz_$(n).log 2>&1 \
	    || { fail=1; echo "fuzz_$(n): FINDING, see $(FB)/fuzz_$(n).log and $(FB)/artifacts/"; }; \
	  grep -E '^stat::number_of_executed_units|^Done' $(FB)/fuzz_$(n).log | tail -1;) \
	exit $$fail
# Every target briefly over its seeds (CI): a crash on a seed or soon after fails check.
fuzz-smoke: fuzz-build
	@fail=0; $(foreach n,$(FUZZ_NAMES),\
	  ( $(call fuzz_run,$(n),$(FUZZ_SMOKE_SECONDS)) ) > $(FB)/fuzz_$(n).log 2>&1 \
	    && echo "fuzz-smoke: $(n) ok ($$(sed -n 's/^stat::number_of_executed_units: *//p' $(FB)/fuzz_$(n).log) runs)" \
	    || { fail=1; echo "fuzz-smoke: $(n) FAILED, see $(FB)/fuzz_$(n).log"; tail -30 $(FB)/fuzz_$(n).log; };) \
	exit $$fail

# ---- valgrind: the CPU-only suites, unforked (valgrind cannot follow lavapipe's JIT) ----
VALGRIND ?= valgrind
check-valgrind: $(TEST_BIN) fixtures
	@mkdir -p $(B)/tmp
	$(LG_TEST_ENV) CK_FORK=no CK_EXCLUDE_TAGS=gpu $(VALGRIND) --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  --show-leak-kinds=definite,indirect --error-exitcode=1 --track-origins=yes $(TEST_BIN)

# ---- ThreadSanitizer: the tcases tagged "threads" (several threads on one model,
# context and tokenizer; GPU ones on lavapipe), built with -fsanitize=thread into
# build-tsan/ by a sub-make. Unforked: TSan must see every thread of the process.
# tests/tsan.supp names only driver code (lavapipe, the validation layer), each justified.
# make check runs it after everything else (about a minute on 2 cores, build included).
TSAN_B ?= build-tsan
# Does $(CC) build and run a ThreadSanitizer program? (gcc: libtsan2; the runtime also
# refuses some kernels' address-space layouts, which running it finds out.)
TSAN_WORKS = printf 'int main(void) { return 0; }\n' | $(CC) -x c -fsanitize=thread -o $(B)/tsan-probe - \
  >/dev/null 2>&1 && $(B)/tsan-probe >/dev/null 2>&1
check-tsan: fixtures
	@$(MAKE) --no-print-directory SANITIZE=thread B=$(TSAN_B) $(TSAN_B)/tests/check_all
	@mkdir -p $(TSAN_B)/tmp
	LLMGPU_TEST_DATA=$(CURDIR)/tests LLMGPU_TEST_TMP=$(CURDIR)/$(TSAN_B)/tmp \
	  VK_LOADER_DISABLE_DYNAMIC_LIBRARY_UNLOADING=1 \
	  TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 exitcode=66 history_size=4" \
	  CK_FORK=no CK_INCLUDE_TAGS=threads timeout 1200 $(TSAN_B)/tests/check_all

# Regenerate the transformers golden fixtures (needs torch + transformers: the GPU machine).
golden:
	python3 tests/tools/make_golden.py --out tests/fixtures/golden

# The build runs in a sub-make: with `make deps demo` on a fresh machine this Makefile was
# parsed (and its pkg-config flags computed) before deps installed anything.
demo:
	@$(MAKE) --no-print-directory all
	$(CLI) generate -p "Once upon a time" -n 48

# ---- install ----
install: lib $(CLI)
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libllmgpu.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libllmgpu.so
	$(INSTALL_DATA) $(STLIB) $(DESTDIR)$(LIBDIR)/
	$(INSTALL_DATA) include/llmgpu.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 755 $(CLI) $(DESTDIR)$(BINDIR)/
	$(MAKE) --no-print-directory install-pc
install-pc:
	$(INSTALL) -d $(DESTDIR)$(PKGCONFIGDIR)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' pkgconfig/llmgpu.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/llmgpu.pc
uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libllmgpu.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libllmgpu.so $(DESTDIR)$(LIBDIR)/libllmgpu.a \
	      $(DESTDIR)$(INCLUDEDIR)/llmgpu.h $(DESTDIR)$(BINDIR)/llmgpu $(DESTDIR)$(PKGCONFIGDIR)/llmgpu.pc

clean:
	rm -rf build build-san build-fuzz build-tsan

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FB)/obj -name '*.d' 2>/dev/null)

# libllmgpu - GNU make build. User-overridable: CC CXX CFLAGS LDFLAGS PREFIX DESTDIR
# LIBDIR INCLUDEDIR PKGCONFIGDIR INSTALL INSTALL_DATA. Project flags live in LG_*.
#   make            library (shared+static) and CLI into build/
#   make check      build and run every test (GPU suites run on whatever Vulkan
#                   device is found; lavapipe on a machine without a GPU)
#   make demo       build and generate from the bundled model
#   make deps       install the Debian packages (as root) or print the apt-get line
#   make SANITIZE=1 check   the same under ASan+UBSan (into build-san/)

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

.PHONY: all lib examples fixtures check check-install check-cpu check-gpu check-symbols check-header check-python \
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
DEB_ALL = $(DEB_PACKAGES) vulkan-validationlayers python3 ca-certificates \
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

# CPU suites fork (crash isolation, timeouts); GPU suites run unforked (a Vulkan device
# must not cross fork()) under an outer timeout because Check's timeouts need fork.
LG_TEST_ENV := LLMGPU_TEST_DATA=$(CURDIR)/tests LLMGPU_TEST_TMP=$(CURDIR)/$(B)/tmp \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
  VK_LOADER_DISABLE_DYNAMIC_LIBRARY_UNLOADING=1
# Real tokenizer files (Llama 2, Llama 3, Qwen3) for the parity tests, pinned by sha256.
fixtures:
	@sh tests/tools/fetch_tokenizers.sh
check: all $(TEST_BIN) check-symbols check-header fixtures
	@mkdir -p $(B)/tmp
	$(LG_TEST_ENV) CK_EXCLUDE_TAGS=gpu $(TEST_BIN)
	$(LG_TEST_ENV) CK_FORK=no CK_INCLUDE_TAGS=gpu timeout 1500 $(TEST_BIN)
	$(MAKE) --no-print-directory check-examples check-install
	@if [ -d bindings/python/tests ]; then $(MAKE) --no-print-directory check-python; fi
check-cpu: $(TEST_BIN)
	@mkdir -p $(B)/tmp
	$(LG_TEST_ENV) CK_EXCLUDE_TAGS=gpu $(TEST_BIN)
check-gpu: $(TEST_BIN)
	@mkdir -p $(B)/tmp
	$(LG_TEST_ENV) CK_FORK=no CK_INCLUDE_TAGS=gpu timeout 1500 $(TEST_BIN)
check-examples: $(CLI)
	@sh tests/cli_test.sh $(B)
check-python: lib
	cd bindings/python && LLMGPU_LIBRARY=$(CURDIR)/$(B)/$(SONAME) $(PYTHON) -m unittest discover -s tests -v

# Install into a staging DESTDIR, build examples/simple.c with nothing but pkg-config,
# run it on a tiny model, uninstall, and require that nothing is left behind.
check-install: lib $(CLI)
	@d=$(CURDIR)/$(B)/tmp/install; rm -rf $$d; \
	$(MAKE) --no-print-directory install DESTDIR=$$d PREFIX=/usr/local >/dev/null && \
	PKG_CONFIG_SYSROOT_DIR=$$d PKG_CONFIG_PATH=$$d/usr/local/lib/pkgconfig \
	  sh -c '$(CC) examples/simple.c $$(pkg-config --cflags --libs llmgpu) -o '$$d'/app' && \
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

# Regenerate the transformers golden fixtures (needs torch + transformers: the GPU machine).
golden:
	python3 tests/tools/make_golden.py --out tests/fixtures/golden

demo: all
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
	rm -rf build build-san

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

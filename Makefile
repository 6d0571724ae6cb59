# coreai: plain GNU make. `make` builds the library and tools into build/,
# `make test` runs the whole suite, `make asan` the same under ASan+UBSan,
# `make fuzz` builds the libFuzzer targets (clang), `make run` fetches the
# default model and generates with it.

CC      ?= cc
B       ?= build
OPT     ?= -O2
SAN     ?=
WERROR  ?=
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(OPT) -g -fPIC -pthread \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2 \
	-Wundef -Wdouble-promotion -fno-common -fvisibility=hidden \
	-Iinclude $(SAN) $(WERROR)
LDLIBS  := -lm -lpthread
LDFLAGS_ALL = $(SAN) -pthread

# Optional libraries (image decoding for the classic engine).
HAVE_PNG  := $(shell printf '#include <png.h>\nint main(void){return 0;}' | $(CC) -x c - -o /dev/null -lpng 2>/dev/null && echo 1)
HAVE_JPEG := $(shell printf '#include <stdio.h>\n#include <jpeglib.h>\nint main(void){return 0;}' | $(CC) -x c - -o /dev/null -ljpeg 2>/dev/null && echo 1)
ifeq ($(HAVE_PNG),1)
CFLAGS_BASE += -DCAI_HAVE_PNG=1
LDLIBS += -lpng
endif
ifeq ($(HAVE_JPEG),1)
CFLAGS_BASE += -DCAI_HAVE_JPEG=1
LDLIBS += -ljpeg
endif

SRC       := $(shell find src -name '*.c' | sort)
OBJ       := $(SRC:%.c=$(B)/%.o)
TOOLS_SRC := $(wildcard tools/*.c)
TOOLS     := $(TOOLS_SRC:tools/%.c=$(B)/%)
TEST_SRC  := $(wildcard tests/unit/*.c tests/kernels/*.c tests/golden/*.c)
TESTS     := $(foreach t,$(TEST_SRC),$(B)/tests/$(basename $(notdir $(t))))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)

ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := $(ISA_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mavx512vbmi

all: $(B)/libcoreai.a $(B)/libcoreai.so $(TOOLS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -MMD -MP -c $< -o $@

# Per-file instruction-set flags: only these files may use the intrinsics.
$(B)/src/kernels/x86/avx2%: CFLAGS += $(ISA_AVX2)
$(B)/src/kernels/x86/avx512%: CFLAGS += $(ISA_AVX512)

$(B)/libcoreai.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libcoreai.so: $(OBJ)
	$(CC) -shared $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS)

$(B)/%: tools/%.c $(B)/libcoreai.a
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -Isrc -MMD -MP $< -o $@ $(B)/libcoreai.a $(LDFLAGS_ALL) $(LDLIBS)

$(B)/tests/%: tests/*/%.c $(B)/libcoreai.a tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -Isrc -Itests -MMD -MP $(filter %.c,$^) -o $@ $(B)/libcoreai.a $(LDFLAGS_ALL) $(LDLIBS)

tests: $(TESTS)

test: all $(TESTS)
	@scripts/get_model.sh >/dev/null 2>&1 || echo "note: default model not fetched; model tests will skip"
	@B=$(B) scripts/run_tests.sh $(TESTS)

# ASan + UBSan: the same suite in build-asan/.
asan:
	$(MAKE) B=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

# ISA_REF=1 runs the suite with the plain C kernels.
test-ref: all $(TESTS)
	@COREAI_ISA=ref B=$(B) scripts/run_tests.sh $(TESTS)

# libFuzzer targets (clang): build-fuzz/fuzz_<parser>.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
fuzz:
	$(MAKE) CC=clang B=build-fuzz OPT=-O1 SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" build-fuzz/libcoreai.a
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  echo "clang $$f -> build-fuzz/$$n"; \
	  clang $(FUZZ_CFLAGS) $$f -o build-fuzz/$$n build-fuzz/libcoreai.a $(LDLIBS) || exit 1; done

run: all
	@model=$$(scripts/get_model.sh) && \
	$(B)/coreai run "$$model" --chat -n 128 -p "What is the capital of France? Answer in one sentence."

format:
	clang-format -i $$(find src tools tests include -name '*.[ch]')

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all test tests asan test-ref fuzz run format clean
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)

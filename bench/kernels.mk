# bench/kernels.mk: the kernel and sampler micro-benchmarks (bench_kernels.c,
# bench_sampler.c), linked
# against the library of a top-level build:
#   make B=build-perf -j2 && make -f bench/kernels.mk B=build-perf
#   build-perf/bench/bench_kernels -t q4_1 -k 576 -m 1536 -n 1,4,64
CC ?= cc
B  ?= build-perf
CFLAGS_BK := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wmissing-prototypes \
	-Wdouble-promotion -pthread -Iinclude -Isrc

all: $(B)/bench/bench_kernels $(B)/bench/bench_sampler

$(B)/bench/bench_kernels: bench/bench_kernels.c $(B)/libcoreai.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BK) $< -o $@ $(B)/libcoreai.a -lm -lpthread

$(B)/bench/bench_sampler: bench/bench_sampler.c $(B)/libcoreai.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BK) $< -o $@ $(B)/libcoreai.a -lm -lpthread

.PHONY: all $(B)/bench/bench_kernels $(B)/bench/bench_sampler

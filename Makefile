# SPDX-License-Identifier: GPL-2.0-or-later
#
# Front door of the migration-transport patch series for QEMU 10.2.2.
#   make            build the patched qemu-system-x86_64 and libvirt
#                   (installs deps first)
#   make check      every test tier, ending in "N passed, N failed"
#   make series     export the upstream-style series, all together and
#                   one per capability, and run checkpatch
#   make series-build  build each capability's series alone on the base
#   make demo       migrate a real Linux guest: precopy, multifd-zstd,
#                   each capability once and one cut (about 2 minutes)
#   make fuzz       each fuzz target FUZZ_TIME (300) seconds, corpus kept
#   make bench      the benchmark matrix, results in bench/results/
# See README.md.

SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
S := scripts

.PHONY: all build build-base deps fetch prepare check check-fast check-qemu check-rdma \
        libvirt check-libvirt \
        fuzz series series-build demo demo-all bench bench-throttle bench-wfg bench-disk bench-spill \
        bench-spill-postcopy bench-rdma bench-units bench-diskmap bench-multifd \
        bench-disk-postcopy bench-learn-io bench-compress bench-compress-256 bench-compress-mix bench-compress-runs bench-headline bench-handoff \
        bench-common \
        clean distclean help

all: build libvirt

help:
	@sed -n '3,14p' Makefile | sed 's/^# *//'
	@echo "Other targets: deps fetch prepare build-base check-fast check-qemu check-rdma libvirt check-libvirt demo-all bench-units bench-diskmap bench-compress-runs clean distclean"

deps:
	@$(S)/deps.sh

fetch: deps
	@$(S)/fetch-base.sh

# prepare.sh fetches (and verifies) the base itself
prepare: deps
	@$(S)/prepare.sh

build: prepare
	@$(S)/build.sh

build-base: prepare
	@$(S)/build.sh --base

# libvirt 11.3.0 with the series of libvirt/series: virsh, virtqemud and
# the unit tests the libvirt tier runs, in build/libvirt/build.
libvirt: deps
	@$(S)/libvirt.sh build

# The fast tier alone: the policy units and their cmocka tests, no QEMU.
check-fast: deps
	@$(PYTHON) $(S)/check.py --tier fast

# Worst-case timings of the policy units that run with the BQL held
# (tests/bench/): printed, not asserted.  Seconds.
bench-units: deps
	@$(PYTHON) $(S)/check.py --tier fast >/dev/null
	@meson test -C build/fast --benchmark --verbose 2>&1 | grep -E '^(disk map|[^ ]+ +OK|.*FAIL)'

# How long the source holds the BQL to read the largest disk-backed map
# the parser accepts (2^24 records; RECORDS=N for fewer).  Printed.
RECORDS ?= 16777216
bench-diskmap: build
	@$(PYTHON) $(S)/bench/diskmap_setup.py --records $(RECORDS)

# The fuzz targets of tests/fuzz, longer than make check's fuzz tier
# (40 s each), on a corpus kept in build/fuzz-corpus/ between runs.
# A crash fails, its input in build/check-logs/fuzz-artifacts/.
FUZZ_TIME ?= 300
fuzz: deps
	@FUZZ_TIME=$(FUZZ_TIME) FUZZ_KEEP_CORPUS=1 $(PYTHON) $(S)/check.py --tier fuzz

# The QEMU tiers alone, on an existing build.
check-qemu:
	@$(PYTHON) $(S)/check.py --tier unit --tier qtest --tier interop

# RDMA migration tests in a Soft-RoCE guest (the host has no RDMA).
check-rdma: build
	@$(PYTHON) $(S)/check.py --tier rdma

# The libvirt tier alone, on an existing build.
check-libvirt: libvirt
	@$(PYTHON) $(S)/check.py --tier libvirt

check: build build-base libvirt
	@$(PYTHON) $(S)/check.py

series: prepare libvirt
	@$(PYTHON) $(S)/series.py --export

# Each series alone on the base (with the series it is based on), built
# in build/lone-build: about 14 minutes, so not part of make check.
series-build: prepare
	@$(PYTHON) $(S)/series.py --build

# Real-guest harness (bench/README.md): a Debian guest migrated between two
# patched QEMUs, verified: precopy, multifd-zstd, each capability once and
# one network cut.
demo: build
	@PYTHON=$(PYTHON) $(S)/demo.sh

# The same with every configuration of the harness (about 6 minutes).
demo-all: build
	@PYTHON=$(PYTHON) $(S)/demo.sh --configs all

# Every scenario x configuration x 3 repetitions; writes bench/results/.
# BENCH_ARGS go to migbench.py bench, e.g. BENCH_ARGS="--scenarios mixed".
# Then the RDMA comparison, which needs its own guest (bench-rdma).
bench: build
	@PYTHON=$(PYTHON) $(S)/bench.sh $(BENCH_ARGS)
	@/usr/bin/python3 $(S)/bench/rdma_report.py

# predictive-throttle against no throttle and auto-converge (default and
# tuned), dirtiers at 0.5x, 2x and 4x the link; bench/results/throttle.*
bench-throttle: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name throttle \
	    --scenarios throttle-0.5x,throttle-2x,throttle-4x \
	    --configs precopy,auto-converge,auto-converge-tuned,predictive-throttle \
	    $(BENCH_ARGS)

# The headline (bench/README.md): a 4 GiB guest, 2.4 GiB of it page cache
# of files on the shared disk (its own guest, build/guest-headline, with a
# 2.5 GiB disk), a writer at 2x the link; this series' best against
# upstream's best, each with the network cut halfway.  Under 45 minutes.
# bench/results/headline.*
HEADLINE_CONFIGS := upstream-best,upstream-best+postcopy-preempt,dirty-limit,series-best,series-best-precopy,upstream-best-cut50-restart,upstream-best+postcopy-preempt-cut-recover,series-best-cut50
bench-headline: build
	@GUEST_NAME=guest-headline DISK_FILES=$$($(PYTHON) -c 'import sys; \
	    sys.path.insert(0, "$(S)/bench"); import configs; \
	    print(configs.HEADLINE_DISK_FILES)') $(S)/guest/build-guest.sh
	@PYTHON=$(PYTHON) $(S)/bench.sh --name headline --scenarios headline \
	    --configs $(HEADLINE_CONFIGS) $(BENCH_ARGS)

# rdma-pin-budget against rdma-pin-all and dynamic registration, in the
# Soft-RoCE guest; bench/results/rdma-pin-budget.*
bench-rdma: build
	@/usr/bin/python3 $(S)/bench/rdma_report.py

bench-wfg: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name write-fault-groups \
	    --scenarios dirty-seq,dirty-rand,throttle-2x \
	    --configs precopy,write-fault-groups-1,write-fault-groups \
	    $(BENCH_ARGS)

# adaptive-compression against multifd's fixed choices (none, zstd
# level 1, 3 and 6) on the 128 MiB/s link and uncapped, with compressible
# dirty pages and with a page cache half text, half random.
# bench/results/adaptive-compression.*
bench-compress: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name adaptive-compression \
	    --scenarios text-dirty,pagecache \
	    --configs precopy,multifd,multifd-zstd,multifd-zstd-3,multifd-zstd-6,adaptive-compression,multifd-uncapped,multifd-zstd-uncapped,adaptive-compression-uncapped \
	    $(BENCH_ARGS)

# The same at 256 MiB/s, where neither the link nor the CPU alone bounds
# the time, with every fixed choice; 5 repetitions.
# bench/results/adaptive-compression-256.*
bench-compress-256: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name adaptive-compression-256 \
	    --scenarios pagecache,text-dirty \
	    --configs multifd-256,multifd-zstd-256,multifd-zstd-3-256,multifd-zstd-6-256,adaptive-compression-256 \
	    --reps 5 $(BENCH_ARGS)

# The same choices where text and random bytes come in runs of whole
# packets (4 MiB of each by turns), at 128 MiB/s, 256 MiB/s and uncapped:
# where a choice per packet could gain most; 5 repetitions.
# bench/results/adaptive-compression-mix.*
bench-compress-mix: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name adaptive-compression-mix \
	    --scenarios text-runs \
	    --configs multifd,multifd-zstd,multifd-zstd-3,multifd-zstd-6,adaptive-compression,multifd-256,multifd-zstd-256,multifd-zstd-3-256,multifd-zstd-6-256,adaptive-compression-256,multifd-uncapped,multifd-zstd-uncapped,adaptive-compression-uncapped \
	    --reps 5 $(BENCH_ARGS)

# What a choice per run of pages inside a packet could gain over
# adaptive-compression's choice per packet: zstd alone on the benchmark
# guest's kind of pages, one thread, in file order and shuffled.
# bench/results/compress-runs.md
bench-compress-runs: deps
	@$(PYTHON) $(S)/check.py --tier fast >/dev/null
	@{ echo "# What a choice per run of pages could gain (make bench-compress-runs)"; \
	   echo; echo "Run $$(date -u +%Y-%m-%dT%H:%M:%SZ) on $$(nproc) CPUs" \
	       "($$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1))."; \
	   echo; build/fast/bench-compress-runs -r 9; } > bench/results/compress-runs.md
	@cat bench/results/compress-runs.md

# inflight-io-handoff against upstream's drain at switchover: the guest's
# pause with storage taking 200 ms per request, and without disk I/O
bench-handoff: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name inflight-io-handoff \
	    --scenarios slow-disk,idle --configs precopy,inflight-io-handoff \
	    --reps 5 $(BENCH_ARGS)

# common-regions: three real guests with the same files in page cache;
# the destination chooser ranks the hosts, and guest A goes to the one
# whose VMs hold the most of it, against precopy and multifd-zstd to an
# empty host; every destination's RAM compared with the source's.
# bench/results/common-regions.{json,md}
bench-common: build
	@$(PYTHON) $(S)/bench/common_regions.py $(BENCH_ARGS)

# disk-backed-pages, alone and riding multifd-zstd, against precopy,
# return-path (which the capability needs) and multifd-zstd, with
# 160 MiB of page cache, alone and with a dirtier; diskmap publishes the
# map in the guest.  bench/results/disk-backed-pages.*
bench-disk: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name disk-backed-pages \
	    --scenarios pagecache,mixed \
	    --configs precopy,return-path,multifd-zstd,disk-backed-pages,disk-backed-pages-learned,disk-backed-pages-follow,disk-backed-pages-learned+map,disk-backed-pages+multifd-zstd \
	    $(BENCH_ARGS)

# disk-backed-pages with postcopy from the start: postcopy's table of
# references against plain postcopy.
bench-learn-io: build
	@scripts/guest/build-guest.sh
	@$(PYTHON) scripts/bench/learn_io.py --rounds 20 \
	    --json bench/results/disk-learn-io.json

bench-disk-postcopy: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name disk-postcopy \
	    --scenarios pagecache,mixed \
	    --configs precopy,postcopy-early,disk-backed-pages+postcopy-early \
	    $(BENCH_ARGS)

# Multifd-first: each capability alone and riding multifd-zstd (2
# channels), against precopy and upstream's multifd with and without
# zstd; and all of them together, with and without a cut halfway.
# bench/results/multifd.*
bench-multifd: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name multifd \
	    --scenarios pagecache,mixed \
	    --configs precopy,multifd,multifd-zstd,disk-backed-pages,disk-backed-pages+multifd-zstd,write-fault-groups,write-fault-groups+multifd-zstd,predictive-throttle,predictive-throttle+multifd-zstd,shared-file-spill,shared-file-spill+multifd-zstd,disk-backed-pages+predictive-throttle+multifd-zstd,disk-backed+spill+predictive-throttle+multifd-zstd,disk-backed+spill+predictive-throttle+multifd-zstd-cut50 \
	    $(BENCH_ARGS)

# shared-file-spill against precopy and mapped-ram (QEMU's file migration)
# with no fault, and with the network cut halfway (a forwarder in the
# harness) against today's answer, a restart from zero.
# bench/results/shared-file-spill.*
bench-spill: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name shared-file-spill \
	    --scenarios pagecache,mixed \
	    --configs precopy,mapped-ram,shared-file-spill,shared-file-spill-cut50,precopy-cut50-restart \
	    $(BENCH_ARGS)

# shared-file-spill in postcopy: the network cut at the switchover, the
# guest's stall measured from inside it; through the files against
# postcopy-paused and migrate-recover 5 s later, and against no cut
# (postcopy at the link's speed; postcopy-ram: QEMU's default, uncapped).
# bench/results/shared-file-spill-postcopy.*
bench-spill-postcopy: build
	@PYTHON=$(PYTHON) $(S)/bench.sh --name shared-file-spill-postcopy \
	    --scenarios mixed \
	    --configs postcopy-ram,postcopy-ram-link,postcopy-spill,postcopy-cut-recover,postcopy-spill-cut,postcopy-preempt-link,postcopy-preempt-spill-cut \
	    $(BENCH_ARGS)

# Keeps the fetched base and the prepared trees; drops every build output.
clean:
	rm -rf build/qemu/build build/qemu-base/build build/fast \
	       build/fuzz build/fuzz-work \
	       build/series build/series-tree build/check-logs build/bench \
	       build/series-lone build/lone-tree build/lone-build

distclean:
	rm -rf build

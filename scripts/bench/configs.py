# SPDX-License-Identifier: GPL-2.0-or-later
"""Migration configurations and guest scenarios of the demo and the bench.

A configuration is one entry: a name, the capabilities to switch on and
the parameters to set (on both sides, or on the source only with
dest=False, for a capability that does not change the stream), and
whether the driver switches to postcopy.  An entry whose
capabilities the binary does not list in query-migrate-capabilities is
skipped with a note, so a capability that has not landed yet costs nothing.
To measure a new capability, add (or fix) its entry here.

Values in params may use {workdir} (the run's private directory),
{disk_node} (the node name of the shared disk) and, with hook="diskmap",
{disk_map} (the guest-physical address of the map diskmap published).
A value that is only a placeholder keeps the placeholder's type (the
map address is an integer)."""

from dataclasses import dataclass, field, replace


@dataclass
class Config:
    name: str
    caps: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    # switch to postcopy once the first pass over RAM has completed
    postcopy: bool = False
    # also set caps and params on the destination
    dest: bool = True
    # "baseline": QEMU's own features; "capability": this project's
    kind: str = "baseline"
    # a transport this harness cannot provide yet (e.g. "rdma")
    needs: str = ""
    note: str = ""
    # parameters set on the source only (after params, which go to both)
    src_params: dict = field(default_factory=dict)
    # "diskmap": once the page cache is filled, run diskmap in the guest
    # (bench/workloads/diskmap.c) and give its map address as {disk_map};
    # after the migration ask it whether any mapped page moved.
    # "diskmap-follow": run it as a daemon (-f) before the fill instead
    hook: str = ""
    # disk-backed-pages' learned map: set caps and params on the source
    # when it has booted, before the workload fills the page cache, so
    # that it learns from the guest's reads
    learn: bool = False
    # run only in these scenarios (empty: all)
    scenarios: tuple = ()
    # "tcp" (default), or "file": migrate to {workdir}/mapped.bin, and
    # start the destination only once the source has completed, to load
    # that file (QEMU's own file migration, e.g. with mapped-ram)
    transport: str = "tcp"
    # max-bandwidth for this configuration (bytes/s; 0: the link's)
    max_bandwidth: int = 0
    # > 0: migrate through the harness's TCP forwarder, which breaks the
    # connection after this fraction of the bytes precopy sent in the same
    # scenario of the same run (the median so far)
    cut: float = 0.0
    # the configuration whose bytes the cut is a fraction of: the network
    # breaks halfway through this configuration's own migration
    cut_base: str = "precopy"
    # with cut: the broken migration fails; check the source, then start
    # a fresh destination and migrate again from zero, without a cut
    restart: bool = False
    # "postcopy-active": migrate through the forwarder, which the harness
    # cuts as soon as the source reports this status (the switchover of a
    # postcopy configuration), instead of at a byte count (cut)
    cut_on: str = ""
    # > 0, with cut_on: the broken postcopy migration must pause on both
    # sides (postcopy-paused); this many seconds after the cut the network
    # is back: migrate-recover on the destination to a new port (through
    # a new forwarder, without a cut), migrate with resume on the source
    recover_after: float = 0.0
    # postcopy at the link's speed too: max-postcopy-bandwidth = the
    # link's max-bandwidth (QEMU's default, 0, leaves postcopy uncapped,
    # and over loopback the postcopy phase then lasts ~0.2 s)
    postcopy_link: bool = False
    # with postcopy: switch as soon as the migration is active, before
    # the first pass (postcopy-first), instead of after it
    postcopy_early: bool = False


# make bench-compress's scenarios (and -256's and -mix's): the
# configurations only they need run in no other, so that make bench does
# not grow by them
COMPRESS_SCENARIOS = ("text-dirty", "pagecache", "text-runs")

CONFIGS = [
    Config("precopy"),
    Config("auto-converge", caps={"auto-converge": True},
           params={"cpu-throttle-initial": 20,
                   "cpu-throttle-increment": 10}),
    # auto-converge given its best shot on a fast dirtier: start high,
    # step high, slow down near the end
    Config("auto-converge-tuned", caps={"auto-converge": True},
           params={"cpu-throttle-initial": 50,
                   "cpu-throttle-increment": 20,
                   "cpu-throttle-tailslow": True}),
    Config("multifd-zstd", caps={"multifd": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd"}),
    Config("postcopy-ram", caps={"postcopy-ram": True}, postcopy=True),
    # Postcopy from the start (make bench-disk-postcopy): every page goes
    # through postcopy, in the background or when the guest faults, at
    # the link's speed (postcopy_link), as over a real network.
    Config("postcopy-early", caps={"postcopy-ram": True}, postcopy=True,
           postcopy_early=True, postcopy_link=True,
           scenarios=("pagecache", "mixed")),
    # The same with disk-backed-pages: the page cache goes in postcopy's
    # table of references and the destination places it from the disk.
    Config("disk-backed-pages+postcopy-early", kind="capability",
           caps={"return-path": True, "disk-backed-pages": True,
                 "postcopy-ram": True},
           params={"disk-backed-node": "{disk_node}"},
           src_params={"disk-backed-map": "{disk_map}"},
           postcopy=True, postcopy_early=True, postcopy_link=True,
           hook="diskmap", scenarios=("pagecache", "mixed")),
    # The fair baseline of disk-backed-pages, which needs the return path.
    Config("return-path", caps={"return-path": True},
           scenarios=("pagecache", "mixed")),

    # The project's capabilities (architecture.md), first-cut parameters.
    # docs/devel/migration/disk-backed-pages.rst: both sides know the
    # shared disk's node; the source reads the map the guest published
    # (diskmap, started by the hook) and re-sends over the return path.
    Config("disk-backed-pages", kind="capability",
           caps={"return-path": True, "disk-backed-pages": True},
           params={"disk-backed-node": "{disk_node}"},
           src_params={"disk-backed-map": "{disk_map}"},
           hook="diskmap", scenarios=("pagecache", "mixed")),
    # The learned map alone: no program of ours in the guest, which only
    # reads its files; the source learns from the reads it sees complete
    # (docs/devel/migration/disk-backed-pages.rst, "The learned map").
    Config("disk-backed-pages-learned", kind="capability",
           caps={"return-path": True, "disk-backed-pages": True},
           params={"disk-backed-node": "{disk_node}"},
           learn=True, scenarios=("pagecache", "mixed")),
    # Both: the learned map and diskmap's map, which wins where it has a
    # record.
    Config("disk-backed-pages-learned+map", kind="capability",
           caps={"return-path": True, "disk-backed-pages": True},
           params={"disk-backed-node": "{disk_node}"},
           src_params={"disk-backed-map": "{disk_map}"},
           learn=True, hook="diskmap", scenarios=("pagecache", "mixed")),
    # diskmap as a daemon (-f 1): started before the fill, it locks
    # nothing and publishes the page cache it sees every second; the
    # source follows the map's generation during the migration.
    Config("disk-backed-pages-follow", kind="capability",
           caps={"return-path": True, "disk-backed-pages": True},
           params={"disk-backed-node": "{disk_node}"},
           src_params={"disk-backed-map": "{disk_map}"},
           hook="diskmap-follow", scenarios=("pagecache", "mixed")),
    # The same riding multifd-zstd: references on the main channel, the
    # pages in full compressed through two channels.
    Config("disk-backed-pages+multifd-zstd", kind="capability",
           caps={"return-path": True, "disk-backed-pages": True,
                 "multifd": True},
           params={"disk-backed-node": "{disk_node}",
                   "multifd-channels": 2, "multifd-compression": "zstd"},
           src_params={"disk-backed-map": "{disk_map}"},
           hook="diskmap", scenarios=("pagecache", "mixed")),
    # make bench-multifd: upstream's parallel channels, plain, and each
    # capability that rides them (zstd-compressed, 2 channels).  The
    # source-only capabilities are set on the destination too, where
    # they do nothing, because multifd must be on both sides.
    Config("multifd", caps={"multifd": True},
           params={"multifd-channels": 2}),
    Config("write-fault-groups+multifd-zstd", kind="capability",
           caps={"write-fault-groups": True, "multifd": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd"},
           src_params={"write-fault-group-max": 64}),
    Config("predictive-throttle+multifd-zstd", kind="capability",
           caps={"predictive-throttle": True, "multifd": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd"},
           src_params={"throttle-target-ratio": 50}),
    # shared-file-spill riding multifd-zstd: every channel teed to a file
    # of its own; no pages file (docs/devel/migration/shared-file-spill.rst,
    # "Multifd").
    Config("shared-file-spill+multifd-zstd", kind="capability",
           caps={"shared-file-spill": True, "multifd": True},
           params={"spill-file": "{workdir}/spill.bin",
                   "multifd-channels": 2, "multifd-compression": "zstd"}),
    # Everything together: page-cache pages as disk references, the rest
    # compressed over two channels, every channel teed to the shared
    # file, the throttle holding the dirtier; and the same with the
    # network cut halfway through its own migration, which must complete
    # through the files.
    *[Config("disk-backed+spill+predictive-throttle+multifd-zstd" + suffix,
             kind="capability",
             caps={"return-path": True, "disk-backed-pages": True,
                   "shared-file-spill": True, "predictive-throttle": True,
                   "multifd": True},
             params={"disk-backed-node": "{disk_node}",
                     "spill-file": "{workdir}/spill.bin",
                     "multifd-channels": 2, "multifd-compression": "zstd"},
             src_params={"disk-backed-map": "{disk_map}",
                         "throttle-target-ratio": 50},
             hook="diskmap", scenarios=("pagecache", "mixed"), cut=cut,
             cut_base="disk-backed+spill+predictive-throttle+multifd-zstd")
      for suffix, cut in (("", 0.0), ("-cut50", 0.5))],
    # The same without shared-file-spill.
    Config("disk-backed-pages+predictive-throttle+multifd-zstd",
           kind="capability",
           caps={"return-path": True, "disk-backed-pages": True,
                 "predictive-throttle": True, "multifd": True},
           params={"disk-backed-node": "{disk_node}",
                   "multifd-channels": 2, "multifd-compression": "zstd"},
           src_params={"disk-backed-map": "{disk_map}",
                       "throttle-target-ratio": 50},
           hook="diskmap", scenarios=("pagecache", "mixed")),
    # Source-side only (docs/devel/migration/write-fault-groups.rst);
    # group max 1 is per-page write-fault tracking, its own baseline.
    Config("write-fault-groups", kind="capability",
           caps={"write-fault-groups": True},
           params={"write-fault-group-max": 64}, dest=False),
    Config("write-fault-groups-1", kind="capability",
           caps={"write-fault-groups": True},
           params={"write-fault-group-max": 1}, dest=False,
           note="per-page write-fault tracking"),
    # Source-side only (docs/devel/migration/predictive-throttle.rst).
    Config("predictive-throttle", kind="capability",
           caps={"predictive-throttle": True},
           params={"throttle-target-ratio": 50}, dest=False),
    # QEMU's own file migration, the nearest existing feature to
    # shared-file-spill: the whole migration through a file, the
    # destination started once the source has completed.  Storage is not
    # capped like the link.
    Config("mapped-ram", caps={"mapped-ram": True}, transport="file",
           max_bandwidth=64 << 30, scenarios=("pagecache", "mixed"),
           note="file: migration to {workdir}/mapped.bin, destination "
                "started when the source completed"),
    # docs/devel/migration/shared-file-spill.rst: the stream goes to the
    # network and to the file; no fault here, so this is its overhead.
    Config("shared-file-spill", kind="capability",
           caps={"shared-file-spill": True},
           params={"spill-file": "{workdir}/spill.bin"}),
    # The same with the network broken halfway through its own stream
    # (which the pages file makes shorter than precopy's): it must
    # complete through the file (one failover on each side).
    Config("shared-file-spill-cut50", kind="capability",
           caps={"shared-file-spill": True},
           params={"spill-file": "{workdir}/spill.bin"}, cut=0.5,
           cut_base="shared-file-spill", scenarios=("pagecache", "mixed")),
    # Today's answer to the same broken network: the migration fails, the
    # guest runs on at the source, a fresh destination, migrate from zero.
    Config("precopy-cut50-restart", cut=0.5, restart=True,
           scenarios=("pagecache", "mixed")),
    # shared-file-spill in postcopy (make bench-spill-postcopy): the guest
    # runs on the destination from the switchover; the network breaks
    # right then.  Postcopy at the link's speed (postcopy_link), so that
    # the cut falls in a postcopy phase of about a second.  Only in mixed:
    # postcopy never starts in pagecache (it converges in the first pass)
    # and only the dirtier shows the stall.
    # The reference: plain postcopy at the link's speed, no cut.
    Config("postcopy-ram-link", caps={"postcopy-ram": True}, postcopy=True,
           postcopy_link=True, scenarios=("mixed",),
           note="max-postcopy-bandwidth = the link's max-bandwidth"),
    # No cut: what the spill file costs postcopy.
    Config("postcopy-spill", kind="capability",
           caps={"postcopy-ram": True, "shared-file-spill": True},
           params={"spill-file": "{workdir}/spill.bin"}, postcopy=True,
           postcopy_link=True, scenarios=("mixed",)),
    # Today's answer: both sides pause, the guest stalls on its missing
    # pages until the network is back (5 s) and the operator recovers.
    Config("postcopy-cut-recover", caps={"postcopy-ram": True},
           postcopy=True, postcopy_link=True, cut_on="postcopy-active",
           recover_after=5.0, scenarios=("mixed",),
           note="network cut at switchover, restored after 5 s: "
                "migrate-recover + migrate resume"),
    # The same cut with shared-file-spill: it must complete through the
    # files (stream and return path), one failover on each side, no pause.
    Config("postcopy-spill-cut", kind="capability",
           caps={"postcopy-ram": True, "shared-file-spill": True},
           params={"spill-file": "{workdir}/spill.bin"}, postcopy=True,
           postcopy_link=True, cut_on="postcopy-active",
           scenarios=("mixed",)),
    # postcopy-preempt (set on both sides, as every capability here):
    # requested pages go by a second connection of their own, the
    # preempt channel, which the source opens to the same port at the
    # switchover (the forwarder takes both and cuts both).  The
    # reference: preempt at the link's speed, no cut.
    Config("postcopy-preempt-link",
           caps={"postcopy-ram": True, "postcopy-preempt": True},
           postcopy=True, postcopy_link=True, scenarios=("mixed",),
           note="max-postcopy-bandwidth = the link's max-bandwidth"),
    # The cut at the switchover with preempt and shared-file-spill: the
    # preempt channel gets a file too (spill-file + ".preempt"); it must
    # complete through the files, one failover on each side, no pause.
    Config("postcopy-preempt-spill-cut", kind="capability",
           caps={"postcopy-ram": True, "postcopy-preempt": True,
                 "shared-file-spill": True},
           params={"spill-file": "{workdir}/spill.bin"}, postcopy=True,
           postcopy_link=True, cut_on="postcopy-active",
           scenarios=("mixed",)),
    # make bench-compress: adaptive-compression against multifd's fixed
    # choices (no compression, zstd level 1, QEMU's default, and levels
    # 3 and 6), on the link and uncapped (loopback, CPU-bound).
    Config("multifd-zstd-3", caps={"multifd": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd",
                   "multifd-zstd-level": 3}),
    Config("multifd-zstd-6", caps={"multifd": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd",
                   "multifd-zstd-level": 6},
           scenarios=COMPRESS_SCENARIOS),
    Config("adaptive-compression", kind="capability",
           caps={"multifd": True, "adaptive-compression": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd"}),
    Config("multifd-uncapped", caps={"multifd": True},
           params={"multifd-channels": 2}, max_bandwidth=64 << 30),
    Config("multifd-zstd-uncapped", caps={"multifd": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd"},
           max_bandwidth=64 << 30),
    Config("adaptive-compression-uncapped", kind="capability",
           caps={"multifd": True, "adaptive-compression": True},
           params={"multifd-channels": 2, "multifd-compression": "zstd"},
           max_bandwidth=64 << 30),
    # make bench-handoff: the requests in flight at switchover go to the
    # destination instead of being waited for in the guest's pause
    Config("inflight-io-handoff", kind="capability",
           caps={"inflight-io-handoff": True},
           scenarios=("slow-disk", "idle")),
    Config("rdma-pin-budget", kind="capability",
           caps={"rdma-pin-budget": True},
           params={"rdma-pin-limit": 64 * 1024 * 1024}, needs="rdma",
           note="needs an RDMA link (Soft-RoCE inside a guest); "
                "not run by this loopback harness"),
]

# make bench-headline (bench/README.md, "The headline benchmark"):
# upstream's best, each tuned as an operator would, against this
# series' best, each with the network cut halfway.  Every configuration
# here runs only in the headline scenario.
_MULTIFD_ZSTD = {"multifd-channels": 2, "multifd-compression": "zstd"}
# auto-converge as bench-throttle found it best (auto-converge-tuned)
_AC_TUNED = {"cpu-throttle-initial": 50, "cpu-throttle-increment": 20,
             "cpu-throttle-tailslow": True}
_SERIES_BEST = dict(
    kind="capability",
    caps={"return-path": True, "disk-backed-pages": True,
          "predictive-throttle": True, "shared-file-spill": True,
          "multifd": True, "adaptive-compression": True},
    params={"disk-backed-node": "{disk_node}",
            "spill-file": "{workdir}/spill.bin", **_MULTIFD_ZSTD},
    src_params={"disk-backed-map": "{disk_map}",
                "throttle-target-ratio": 50},
    hook="diskmap", scenarios=("headline",))
# and switched to postcopy at the end of the first pass, as upstream-best+
# postcopy-preempt is
_SERIES_BEST_POSTCOPY = dict(
    _SERIES_BEST, caps={**_SERIES_BEST["caps"], "postcopy-ram": True},
    postcopy=True, postcopy_link=True)
HEADLINE_CONFIGS = [
    # multifd (2 channels) + zstd + auto-converge, tuned
    Config("upstream-best", caps={"multifd": True, "auto-converge": True},
           params={**_MULTIFD_ZSTD, **_AC_TUNED}, scenarios=("headline",)),
    # the same, switched to postcopy-preempt at the end of the first pass
    Config("upstream-best+postcopy-preempt",
           caps={"multifd": True, "auto-converge": True,
                 "postcopy-ram": True, "postcopy-preempt": True},
           params={**_MULTIFD_ZSTD, **_AC_TUNED}, postcopy=True,
           postcopy_link=True, scenarios=("headline",)),
    Config("dirty-limit", caps={"multifd": True, "dirty-limit": True},
           params=_MULTIFD_ZSTD, needs="kvm-dirty-ring",
           scenarios=("headline",),
           note="dirty-limit needs KVM's dirty ring (-accel "
                "kvm,dirty-ring-size=...); this machine runs TCG"),
    # disk-backed-pages + predictive-throttle + shared-file-spill +
    # adaptive-compression riding multifd-zstd, switched to postcopy at
    # the end of the first pass.  write-fault-groups is left out:
    # bench-wfg measured it no faster than the dirty log.
    Config("series-best", **_SERIES_BEST_POSTCOPY),
    # the same in precopy only: what postcopy adds
    Config("series-best-precopy", **_SERIES_BEST),
    # the network cut halfway through upstream-best's bytes: the
    # migration fails, the source runs on, a fresh destination, restart
    Config("upstream-best-cut50-restart",
           caps={"multifd": True, "auto-converge": True},
           params={**_MULTIFD_ZSTD, **_AC_TUNED}, cut=0.5,
           cut_base="upstream-best", restart=True, scenarios=("headline",)),
    # postcopy-preempt cut at the switchover, the network back after 5 s:
    # migrate-recover and resume, as an operator would
    Config("upstream-best+postcopy-preempt-cut-recover",
           caps={"multifd": True, "auto-converge": True,
                 "postcopy-ram": True, "postcopy-preempt": True},
           params={**_MULTIFD_ZSTD, **_AC_TUNED}, postcopy=True,
           postcopy_link=True, cut_on="postcopy-active", recover_after=5.0,
           scenarios=("headline",)),
    # series-best with the network cut halfway through its own bytes
    Config("series-best-cut50", cut=0.5, cut_base="series-best",
           **_SERIES_BEST_POSTCOPY),
]
CONFIGS += HEADLINE_CONFIGS

# make bench-compress-256: the same choices on a link between the two,
# 256 MiB/s, where neither the link nor the CPU alone bounds the time
CONFIGS += [replace(c, name=c.name + "-256", max_bandwidth=256 << 20,
                    scenarios=COMPRESS_SCENARIOS)
            for c in CONFIGS if c.name in ("multifd", "multifd-zstd",
                                           "multifd-zstd-3", "multifd-zstd-6",
                                           "adaptive-compression")]

BY_NAME = {c.name: c for c in CONFIGS}

# make demo: the point in about two minutes on 2 cores under TCG: plain
# precopy, upstream's fast path, each capability once and one cut.
# make demo-all (--configs all) runs every configuration instead.
DEMO_CONFIGS = [
    "precopy",
    "multifd-zstd",
    "predictive-throttle",
    "write-fault-groups",
    "disk-backed-pages",
    "adaptive-compression",
    # the cut falls halfway through shared-file-spill's own stream, as
    # measured just before it in the same run
    "shared-file-spill",
    "shared-file-spill-cut50",
    "rdma-pin-budget",
]


@dataclass
class Scenario:
    name: str
    description: str
    cache_mib: int = 0          # MiB of disk files read into the page cache
    region_mib: int = 32        # verified static region
    # > 0: the region is random bytes and words of text by turns, in runs
    # of this many MiB (memregion -t)
    region_text_run_mib: int = 0
    dirty_mib: int = 0          # dirtier working set (0: no dirtier)
    dirty_rate: float = 0       # MB/s (0 with dirty_mib: unthrottled)
    dirty_order: str = "rand"   # seq | rand
    dirty_text: bool = False    # the dirtier writes words of text (-t)
    warmup_s: float = 3.0       # workload runs this long before migrating
    # None: DEFAULTS["migrate_timeout"]; a migration still running then is
    # cancelled and reported as failed ("timeout": did not converge)
    migrate_timeout: float = None
    mem_mib: int = 0            # guest RAM (0: DEFAULTS["mem_mib"])
    vcpus: int = 1
    # the guest build/<guest>/ (scripts/guest/build-guest.sh GUEST_NAME),
    # whose shared disk holds at least cache_mib of files
    guest: str = "guest"
    # plain precopy runs in it, first (the base of the ratios); False
    # where it cannot converge and upstream's best is the base instead
    precopy: bool = True
    # in make bench's default list of scenarios (False: only when named)
    default: bool = True
    # > 0: a second virtio-blk disk whose every request takes this many
    # ms (null-co's latency-ns, on both sides), and slow_disk_jobs loops
    # in the guest reading and writing 4 KiB blocks of it with O_DIRECT
    slow_disk_ms: int = 0
    slow_disk_jobs: int = 0


SCENARIOS = [
    Scenario("idle", "booted guest, no workload (plus the verified region)"),
    Scenario("pagecache", "160 MiB of disk files in the page cache",
             cache_mib=160),
    Scenario("dirty-seq", "dirtier: 128 MiB working set, 100 MB/s sequential",
             dirty_mib=128, dirty_rate=100, dirty_order="seq"),
    Scenario("dirty-rand", "dirtier: 128 MiB working set, 100 MB/s random",
             dirty_mib=128, dirty_rate=100, dirty_order="rand"),
    Scenario("mixed", "160 MiB page cache + dirtier 128 MiB at 100 MB/s "
             "sequential", cache_mib=160, dirty_mib=128, dirty_rate=100,
             dirty_order="seq"),
    # Compressible dirty pages (make bench-compress): words of text, which
    # zstd takes to about a sixth.
    Scenario("text-dirty", "dirtier: 128 MiB working set of text, 100 MB/s "
             "sequential", dirty_mib=128, dirty_rate=100, dirty_order="seq",
             dirty_text=True),
    # Text and random bytes in runs of whole packets (make
    # bench-compress-mix): where a choice per packet could gain most.
    Scenario("text-runs", "160 MiB of memory: 4 MiB of random bytes, then "
             "4 MiB of words of text, by turns", region_mib=160,
             region_text_run_mib=4, default=False),
    # CPU-bound dirtier (GB/s under TCG): plain precopy cannot converge;
    # the throttling configurations are what this one measures.
    Scenario("dirty-heavy", "dirtier: 128 MiB working set, sequential, "
             "as fast as it can (precopy cannot converge)",
             dirty_mib=128, dirty_rate=0, dirty_order="seq",
             migrate_timeout=60),
]

# Dirtiers at a multiple of the 128 MiB/s (134 MB/s) link, for the
# throttling configurations (make bench-throttle): at 0.5x precopy
# converges by itself; at 2x and 4x it cannot.
for _x, _rate in (("0.5x", 67), ("2x", 268), ("4x", 537)):
    SCENARIOS.append(Scenario(
        "throttle-" + _x, "dirtier: 128 MiB working set, %d MB/s "
        "sequential (%s the link)" % (_rate, _x), dirty_mib=128,
        dirty_rate=_rate, dirty_order="seq", migrate_timeout=45))

# make bench-headline: the largest guest this machine holds (two 4 GiB
# QEMUs in 24 GiB), 60% of its RAM page cache of files on the shared disk
# (its own guest, build/guest-headline, with a 2.5 GiB disk) and a writer
# dirtying 512 MiB at twice the link's rate.  Plain precopy cannot
# converge; its configurations are HEADLINE_CONFIGS.
HEADLINE_MEM_MIB = 4096
HEADLINE_DISK_FILES = 320               # x 8 MiB
SCENARIOS.append(Scenario(
    "headline", "4 GiB guest, 2 vCPUs: 2458 MiB page cache + dirtier "
    "512 MiB at 268 MB/s sequential (2x the link)",
    cache_mib=HEADLINE_MEM_MIB * 6 // 10, dirty_mib=512, dirty_rate=268,
    dirty_order="seq", warmup_s=5.0, migrate_timeout=300,
    mem_mib=HEADLINE_MEM_MIB, vcpus=2, guest="guest-headline",
    precopy=False, default=False))

# make bench-handoff: storage taking 200 ms per request, 4 requests in
# flight at any time; upstream's switchover waits for them in the pause.
SCENARIOS.append(Scenario(
    "slow-disk", "4 loops reading and writing a disk that takes 200 ms "
    "per request (O_DIRECT)", slow_disk_ms=200, slow_disk_jobs=4,
    default=False))

SCENARIO_BY_NAME = {s.name: s for s in SCENARIOS}

# The emulated link and the guest size shared by all runs.
DEFAULTS = {
    "mem_mib": 512,
    "max_bandwidth": 128 * 1024 * 1024,    # bytes/s
    "downtime_limit": 300,                 # ms (QEMU's default)
    "migrate_timeout": 90,                 # s, then migrate_cancel: failed
    "boot_timeout": 120,                   # s
}

r"""The planned runs of chapters 10--12, per tier, in one place.

A *tier* is a size of the real-image experiments: ``quick`` (CPU smoke runs that CI
re-checks, stored in ``book/results/quick/``) and ``full`` (one GPU, stored in
``book/results/full/``). A tier is one entry of :data:`TIERS`; adding a tier (e.g. a
``cpu-study`` between the two) means adding one entry there, nothing else.

- :class:`PlannedRun` -- one run: its name (results file ``<name>.json``), chapter, the
  trainer's flags, how often to record geometry along training, and its priority;
- :func:`chapter_grid` -- a chapter's runs by section (``{"losses": [...], ...}``);
- :func:`planned_runs` -- every run of a tier (or of one chapter), in priority order;
- :func:`cli_command` / :func:`missing_runs` -- the exact command of a run, and which
  runs have no results file yet;
- :func:`estimate_seconds` -- how long a run takes at a measured throughput, which is
  how the full tier is sized for one GPU lease and how ``python -m cl_lib.campaign``
  picks the runs that fit its budget.

**Sizing the full tier.** A lent GPU (one H200) gives 10 minutes per command, so every
full run is planned to take at most :data:`LEASE_RUN_LIMIT_S` (6 minutes) at the target
throughput :data:`TARGET_VIEWS_PER_S` (40,000 augmented views/s for ResNet-18 on CIFAR
at batch 512: 100 epochs of CIFAR-10 = 10 million views, about 4 minutes). Hence 100
epochs at batch 512 for the chapter-11 runs, 50 epochs for the slower small-batch runs
(chapter 10's batch 128, chapter 11's batch sweep) and for Tiny-ImageNet (twice CIFAR's
images), and 200 epochs for Imagenette (9,469 images). The papers' 200-epoch settings
remain one flag away (:data:`PAPER_EPOCHS`, ``--epochs 200``). ImageNet-100 runs take
hours: they are planned for a GPU server, not for a lease (``lease=False``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "PlannedRun",
    "TIERS",
    "CHAPTERS",
    "TARGET_VIEWS_PER_S",
    "LEASE_RUN_LIMIT_S",
    "PAPER_EPOCHS",
    "chapter_grid",
    "planned_runs",
    "cli_command",
    "wrap_command",
    "missing_runs",
    "train_flags",
    "results_dir",
    "estimate_seconds",
    "views_per_run",
    "cpu_seconds",
    "RECIPES",
    "CPU_STUDY_IMAGES_PER_S",
    "gflop_per_view",
    "dataset_available",
    "DATASET_TRAIN_SIZE",
]

CHAPTERS = ("ch06", "ch10", "ch11", "ch12")
TARGET_VIEWS_PER_S = 40_000.0  # ResNet-18, CIFAR stem, batch 512, one H200 (issue goal)
LEASE_RUN_LIMIT_S = 360.0  # a full run must fit a 10-minute command with room
PAPER_EPOCHS = 200  # the DHEL/KCL paper's and SimCLR's CIFAR setting
REFERENCE_BATCH = 512  # the batch size the throughput is measured at
# cpu-study sizing: source images per second of small_cnn (width 16) on 32-px images,
# training with two views, on 2 idle cores. Measured: 234-293 images/s for one process
# with one thread on a machine shared by other jobs (load 3-4 on 2 cores; the process
# got 63% of a core), i.e. about 400 images/s per core of CPU time; the issue measured
# about 1,000 on 2 idle cores. Planned with 800.
CPU_STUDY_IMAGES_PER_S = 800.0
CPU_STUDY_OVERHEAD_S = 30.0  # per run: loading, kNN over 10k + 10k images, probe
CPU_STUDY_SNAPSHOT_S = 8.0  # per tracked epoch: kNN plus geometry of 500 images
CPU_STUDY_RUN_LIMIT_S = 600.0  # each run <= 10 min on 2 idle cores
# cpu-long sizing: the network, width and epochs the recipe search chose, with
# bf16 autocast and channels_last; source images/s on 2 idle cores (both threads).
CPU_LONG_SIZE = dict(
    arch="small_resnet",  # the best k-NN of the recipe search (book/results/cpu-long)
    width=16,
    subset=50_000,
    test_subset=10_000,
    epochs=20,
    bf16=True,
    channels_last=True,
)
CPU_LONG_IMAGES_PER_S = 700.0  # bench_cpu, small_resnet 16, bf16, 2 threads: 745-1247
CPU_LONG_RUN_LIMIT_S = 2700.0  # each run <= 45 min on 2 idle cores

# Losses by short name: (cl_lib.losses name, loss_kwargs)
LOSSES = {
    "simclr": ("infonce", {"tau": 0.5}),
    "dcl": ("dcl", {"tau": 0.5}),
    "dhel": ("dhel", {"tau": 0.5}),
    "dhel2v": ("dhel", {"tau": 0.3, "both_views": True}),  # the DHEL authors' code
    "kcl": ("kcl", {"kernel": "gaussian"}),
    "cloa": ("cloa", {"tau": 0.5}),
}
# Non-contrastive losses of cl_lib, a row each in chapter 11's cpu-study table (not in
# the full grids, whose losses are LOSSES)
MORE_LOSSES = {
    "barlow": ("barlow_twins", {}),
    "vicreg": ("vicreg", {}),
}
# CLOA's anchor term alone on the 10% labelled samples: the control that says how much
# of CLOA's gain its labels carry without any contrastive term
ANCHOR_ONLY = ("cloa", {"base": "none"})
# The CLOA paper's augmentations (its Sec. 5: ColorJitter 0.2/0.2/0.2/0.1, crops of
# scale 0.8-1), applied to every image; flips as in SimCLR
WEAK_AUGMENT = dict(scale=[0.8, 1], jitter=[0.2, 0.2, 0.2, 0.1], jitter_p=1, gray_p=0)
# The supervised reference of the cpu-study tier: supervised contrastive learning
# (Khosla et al. 2020) with every training label, the same network, data and budget.
SUPERVISED = ("supcon", {"tau": 0.5})

# Optimisation recipes, recorded as run.recipe. "ours": the library's SGD (momentum
# 0.9, weight decay 5e-4, lr 0.06 per 256 images) with a cosine schedule. "authors":
# the DHEL/KCL experiments (Koromilas et al. 2024), trained with the simclr-pytorch
# code they cite: LARS, lr 4.0 at batch 1024 scaled linearly (1.0 per 256 images, the
# trainer's --lr unit), weight decay 1e-6, tau 0.5, warm-up then cosine.
RECIPES: dict[str, dict] = {
    "ours": {},
    "authors": {"optimizer": "lars", "lr": 1.0, "weight_decay": 1e-6},
}

# One entry per tier. "profile" is the trainer's --profile; "seeds" every run is
# repeated for (seed 0 keeps the plain name, seed s > 0 gets "_s<s>"); optional keys:
# "seeded" (only these sections get every seed, the others seed 0), "baseline" (each
# chapter gets an untrained, --epochs 0, run per seed) and, per chapter, "recipe" (a
# key of RECIPES; default "ours").
TIERS: dict[str, dict] = {
    "quick": {
        "profile": "quick",
        "seeds": (0,),
        "ch10": {
            "size": dict(
                arch="small_cnn", width=16, subset=2048, test_subset=500, epochs=6
            ),
            "lrs": [1e-5, 1e-3, 1e-2, 1e-1, 1.0],
            "track": 0,
            # longer runs at two rates, geometry every 5 epochs
            "long": {"epochs": 30, "track": 5, "lrs": [1e-3, 1.0]},
        },
        "ch11": {
            "size": dict(
                arch="small_cnn", width=16, subset=1024, test_subset=500, epochs=2
            ),
            "batch": 128,
            "track": 1,
            "batches": [64, 128, 256],
            "batch_epochs": 2,
            "taus": [0.1, 0.5, 1.0],
            "tiny": {"size": dict(subset=2000), "losses": ("simclr", "dhel")},
            "cifar100": False,
        },
        "ch12": {
            "size": dict(
                arch="small_cnn",
                width=16,
                subset=500,
                test_subset=250,
                epochs=2,
                batch_size=64,
            ),
            "losses": ("simclr", "dhel"),
            "imagenet100": False,
        },
    },
    "full": {
        "profile": "full",
        "seeds": (0,),
        # the untrained network of each chapter's data and encoder (an evaluation only:
        # about a minute on a GPU), so that every full table has its baseline row
        "baseline": True,
        "ch10": {
            "size": dict(arch="resnet18", epochs=50),
            "track": 10,
            "lrs": [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
            "long": None,
        },
        "ch11": {
            "size": dict(arch="resnet18", epochs=100),
            "batch": 512,
            "track": 20,
            "batches": [128, 256, 512, 1024],
            "batch_epochs": 50,
            "taus": [0.1, 0.2, 0.5, 1.0],
            "tiny": {"size": dict(epochs=50), "losses": tuple(LOSSES)},
            "cifar100": True,
            # the DHEL/KCL authors' optimisation (RECIPES), for every ch11 run
            "recipe": "authors",
        },
        "ch12": {
            "size": dict(arch="resnet18", epochs=200, batch_size=256),
            "losses": ("simclr", "dhel", "kcl", "dcl", "cloa"),
            "imagenet100": True,
            "recipe": "authors",  # as chapter 11's full grid
        },
    },
    # Between the two: precomputed on a 2-core CPU, sized so that a trained network is
    # told apart from the untrained one (all 10,000 test images; binomial 95% CI about
    # +-1 point), each run <= 10 min on 2 idle cores, each chapter <= ~90 min (see
    # CPU_STUDY_IMAGES_PER_S and cpu_minutes). Three seeds for the baselines and the
    # headline comparisons, one for the sweeps.
    "cpu-study": {
        "profile": "quick",
        "device": "cpu",
        "seeds": (0, 1, 2),
        "seeded": (
            "baseline",
            "key rates",
            "losses",
            "imagenette",
            "anchor only",
            "effective step",
            "paper protocol",
            "tau seeds",
            "kcl batch",
            "kcl batch steps",
            "kcl gamma",
            "non-contrastive",
            "classes",
        ),
        # The headline comparisons, whose effects are 1-3 points, get two more seeds
        # (five in all): the anchor on InfoNCE at eta = 1 (chapter 10); DHEL (authors'
        # settings), CLOA and KCL against SimCLR (chapter 11).
        "headline": {
            "seeds": (3, 4),
            "ch10": {"key rates": ("infonce_lr1", "cloa_lr1")},
            "ch11": {
                "losses": (
                    "simclr_b256_t0.5",
                    "dhel2v_b256_t0.3",
                    "cloa_b256_t0.5",
                    "kcl_b256",
                )
            },
        },
        "baseline": True,
        # Chapter 6's class-separation measures (CDNVs, few-shot errors and their
        # bounds) on an encoder trained for > 1,000 steps: SimCLR at 32 px, 26 epochs
        # of 10,000 images at batch 256 (1,014 steps), against the untrained network
        "ch06": {
            "size": dict(
                arch="small_cnn",
                width=16,
                subset=10_000,
                test_subset=10_000,
                epochs=26,
                batch_size=256,
            ),
            "loss": "simclr",
        },
        "ch10": {
            "size": dict(
                arch="small_cnn",
                width=16,
                subset=10_000,
                test_subset=10_000,
                epochs=8,
            ),
            "batch": 256,
            "lrs": [1e-5, 1e-3, 1e-2, 1e-1, 1.0],
            "track": 2,  # rank (and kNN) against epoch for every rate
            "bases": ("infonce", "dcl"),  # each with and without the anchor loss
            "long": None,
            # CLOA's anchor term alone at eta = 1: where does CLOA's gain come from?
            "anchor only": [1.0],
            # BatchNorm after every convolution: with weight decay the step is
            # eta / ||W||^2, not eta. InfoNCE at three rates with and without weight
            # decay, CLOA at eta = 1 with and without; weight norms and chapter 1's
            # collinearity tracked.
            "effective step": {
                "lrs": {"infonce": [0.1, 1.0, 3.0], "cloa": [1.0]},
                "weight_decays": [0.0, 5e-4],
            },
            # the CLOA paper's protocol at this scale: its weak augmentations, no
            # weight decay, batch 128, 30 epochs, base loss and CLOA at 1e-2 and 1
            "paper protocol": {
                "epochs": 30,
                "batch": 128,
                "track": 10,
                "lrs": [1e-2, 1.0],
            },
        },
        "ch11": {
            "size": dict(
                arch="small_cnn",
                width=16,
                subset=10_000,
                test_subset=10_000,
                epochs=12,
            ),
            "batch": 256,
            "track": 4,
            "batches": [64, 128, 256, 512],
            "batch_epochs": 12,  # fixed epochs (the papers' protocol)
            # ... and fixed steps (epochs = 12 B / 256) at the batches up to the main
            # one (512 would need 24 epochs: beyond the CPU budget)
            "batch_steps": [64, 128, 256],
            "taus": [0.1, 0.5, 1.0],
            # chapter 4's prediction, with seeds: DHEL's lead grows as tau falls; one-
            # and two-view DHEL separate tau from the two-view energy
            "tau seeds": {
                "taus": [0.1, 0.2, 0.3, 0.5, 1.0],
                "losses": ("simclr", "dhel", "dhel2v"),
            },
            # chapter 5's claim on images: KCL over batch sizes (fixed epochs and fixed
            # steps) and over its energy weight gamma at the main batch
            "kcl": {"batches": [64, 128, 256, 512], "gammas": [1.0, 4.0, 16.0]},
            "non-contrastive": ("barlow", "vicreg"),
            "tiny": {
                "size": dict(subset=10_000, test_subset=10_000),
                "losses": ("simclr", "dhel"),
            },
            "supervised": True,
            # 2.5 times the main budget, kNN every 10 epochs: does the gap to the
            # untrained network keep growing with training at this scale?
            "length": {"epochs": 30, "track": 10, "losses": ("simclr",)},
            "cifar100": False,
        },
        "ch12": {
            "size": dict(
                arch="small_cnn",
                width=16,
                subset=4_000,
                test_subset=3_925,  # all of Imagenette's validation images
                epochs=10,
                batch_size=128,
            ),
            "losses": ("simclr", "dhel"),
            "imagenet100": False,
        },
    },
    # The long CPU tier: every CIFAR-10 training image (50,000) and every test image,
    # one run <= 45 min of wall time on 2 cores with both threads (about twice that on
    # one thread, as a campaign lane runs it). Its recipe (network width, epochs) was
    # found by measurement: the search is in book/results/cpu-long/search/. bf16
    # autocast and channels_last are the CPU speed options (benchmarks/bench_cpu.py).
    # Chapter 11 only: the headline losses with three seeds, SupCon once, the
    # untrained network in both forms; DCL and one-view DHEL after them.
    "cpu-long": {
        "profile": "quick",
        "device": "cpu",
        "seeds": (0, 1, 2),
        "seeded": ("baseline", "losses", "more losses", "imagenette"),
        "baseline": True,
        # source images/s on 2 idle cores for this tier's network and speed options
        "images_per_s": CPU_LONG_IMAGES_PER_S,
        "ch11": {
            "size": dict(CPU_LONG_SIZE),
            "batch": 256,
            "track": 5,  # kNN along training every 5 epochs
            "losses": ("simclr", "dhel2v", "kcl", "cloa"),
            "more losses": ("dcl", "dhel"),  # after everything else
            "supervised": True,
            "cifar100": False,
        },
        # Chapter 12's question on a CPU: at the study's size (4,000 images at 96 px,
        # 10 epochs) Imagenette's trained encoders are not told apart from the
        # untrained one. Here every training and validation image at 64 px and 30
        # epochs, kNN every 5: the epoch at which (if any) they part
        "ch12": {
            "size": dict(
                CPU_LONG_SIZE,
                subset=9_469,
                test_subset=3_925,
                epochs=30,
                image_size=64,
                batch_size=128,  # as the study's: twice the steps of 256 on 9k images
            ),
            "track": 5,
            "losses": ("simclr", "dhel"),
            "imagenet100": False,
        },
    },
}

# The one priority order of a tier's runs (lower first): headline runs first.
PRIORITY = {
    ("ch11", "baseline"): -1,  # untrained networks: seconds each, in every table
    ("ch10", "baseline"): -1,
    ("ch12", "baseline"): -1,
    ("ch11", "losses"): 0,
    ("ch11", "more losses"): 9,
    ("ch11", "length"): 0.3,
    ("ch11", "supervised"): 0.5,
    ("ch10", "key rates"): 1,
    # the sweeps that test Parts I-III on images (cpu-study)
    ("ch10", "anchor only"): 1.2,
    ("ch10", "effective step"): 1.5,
    ("ch06", "baseline"): -1,
    ("ch06", "classes"): 1.6,
    ("ch11", "tau seeds"): 4.2,
    ("ch11", "kcl batch"): 4.5,
    ("ch11", "kcl batch steps"): 4.6,
    ("ch11", "kcl gamma"): 4.7,
    ("ch11", "non-contrastive"): 4.8,
    ("ch10", "paper protocol"): 5.5,
    ("ch12", "imagenette"): 2,
    ("ch11", "batch"): 3,
    ("ch11", "batch steps"): 3.5,
    ("ch11", "tau"): 4,
    ("ch10", "sweep"): 5,
    ("ch10", "long"): 5,
    ("ch11", "tiny"): 6,
    ("ch11", "cifar100"): 7,
    ("ch12", "imagenet100"): 8,
}
# Within ch11's headline runs: the five losses of the chapter first, DHEL (authors')
# last.
_HEADLINE_ORDER = ("simclr", "dhel", "kcl", "dcl", "cloa", "dhel2v")
_CH10_KEY_RATES = (1.0, 1e-3)  # the paper's "strong" and "mild" learning: first

DATASET_TRAIN_SIZE = {
    "cifar10": 50_000,
    "cifar100": 50_000,
    "tiny-imagenet-32": 100_000,
    "imagenette-96": 9_469,
    "imagenet100": 126_689,
}
DATASET_IMAGE_SIDE = {
    "cifar10": 32,
    "cifar100": 32,
    "tiny-imagenet-32": 32,
    "imagenette-96": 96,
    "imagenet100": 224,
}
# Offline archives (in $CL_LIB_DATA) of the data sets a bare GPU machine can read.
_ARCHIVES = {
    "cifar10": "cifar10-jpeg.tar.gz",
    "tiny-imagenet-32": "tiny-imagenet-32.tar.gz",
    "imagenette-96": "imagenette-96.tar.gz",
}


@dataclass(frozen=True)
class PlannedRun:
    """One planned run.

    Attributes:
        name: file stem of its results file, ``<results_dir>/<name>.json``.
        args: the trainer's flags as a dict (``{"loss": "dhel", "lr": 0.3}`` becomes
            ``--loss dhel --lr 0.3``).
        chapter: ``"ch10"``, ``"ch11"`` or ``"ch12"`` ("" for a free-standing run).
        tier: the tier it belongs to (its results folder and trainer profile).
        section: the chapter section it serves (``"losses"``, ``"batch"``, ...).
        track_every: record geometry every this many epochs (0: only at the end).
        priority: lower runs first in a campaign (see :data:`PRIORITY`).
        lease: whether it fits one GPU lease (ImageNet-100 runs do not).
        recipe: the optimisation recipe, a key of :data:`RECIPES` (``"ours"``: SGD +
            cosine; ``"authors"``: the DHEL/KCL authors' LARS setting).
        key: what was trained, in the chapter's words: a key of :data:`LOSSES` or
            :data:`MORE_LOSSES`, ``"supcon"``, ``"anchor"`` (CLOA's term alone),
            chapter 10's ``"infonce"``/``"cloa"``/``"dcl"``/``"cloa_dcl"``, or
            ``"untrained"``/``"untrained_bn"`` for the references. Written at
            planning, so nothing reads it back out of a name.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    chapter: str = ""
    tier: str = "full"
    section: str = ""
    track_every: int = 0
    priority: float = 0.0
    lease: bool = True
    recipe: str = "ours"
    key: str = ""

    def __post_init__(self):
        if (
            not self.name
            or any(c in self.name for c in "/ \\")
            or self.name.endswith(".json")
        ):
            raise ValueError(f"run name must be a plain file stem, got {self.name!r}")
        if self.track_every < 0:
            raise ValueError(f"track_every must be >= 0, got {self.track_every}")
        if self.recipe not in RECIPES:
            raise ValueError(
                f"recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}"
            )

    def metadata(self) -> dict:
        """What a results file records about its place in the grid: ``{"name", "tier",
        "chapter", "section", "recipe", "seed", "key"}``."""
        return {
            "name": self.name,
            "key": self.key,
            "tier": self.tier,
            "chapter": self.chapter,
            "section": self.section,
            "recipe": self.recipe,
            "seed": int(self.args.get("seed", 0)),
        }


def _tier(tier: str) -> dict:
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {sorted(TIERS)}")
    return TIERS[tier]


def results_dir(tier: str, chapter: str, root: str | Path = "book/results") -> str:
    """Where a tier's results of a chapter live: ``<root>/<tier>/<chapter>``."""
    _tier(tier)
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {CHAPTERS}")
    return f"{str(root).rstrip('/')}/{tier}/{chapter}"


def _seeded(runs: list[PlannedRun], seeds: Sequence[int]) -> list[PlannedRun]:
    out = []
    for run in runs:
        for s in seeds:
            if s == 0:
                out.append(run)
                continue
            out.append(
                dataclasses.replace(
                    run, name=f"{run.name}_s{s}", args=dict(run.args, seed=s)
                )
            )
    return out


def _with_recipe(args: dict, recipe: str) -> dict:
    """The trainer's flags of a run with its recipe's optimiser settings added."""
    return dict(args, **RECIPES[recipe])


def _baseline(
    tier: str, chapter: str, args: Mapping[str, Any], name: str = "untrained"
) -> list[PlannedRun]:
    """The untrained network of a chapter (``--epochs 0``: the initial weights,
    evaluated like a trained run), on the chapter's data and architecture: as
    initialised (``name``) and with its BatchNorm statistics re-estimated on the
    training images (``name_bn``; ``--bn-recalibrate``), the stronger reference."""
    args = dict(args, epochs=0)
    for key in ("eval_every", "label_fraction", "optimizer", "weight_decay"):
        args.pop(key, None)
    return [
        PlannedRun(
            name + tag,
            a,
            chapter,
            tier,
            "baseline",
            0,
            PRIORITY[(chapter, "baseline")],
            key="untrained" + tag,
        )
        for tag, a in (("", args), ("_bn", dict(args, bn_recalibrate=True)))
    ]


# ---------------------------------------------------------------------------- chapter 6
def _ch06(tier: str) -> dict[str, list[PlannedRun]]:
    spec = _tier(tier)["ch06"]
    loss, kwargs = LOSSES[spec["loss"]]
    args = dict(dataset="cifar10", loss=loss, loss_kwargs=dict(kwargs), **spec["size"])
    run = PlannedRun(
        f"classes_{spec['loss']}",
        args,
        "ch06",
        tier,
        "classes",
        0,
        PRIORITY[("ch06", "classes")],
        key=spec["loss"],
    )
    return {"baseline": _baseline(tier, "ch06", args), "classes": [run]}


# --------------------------------------------------------------------------- chapter 10
def _ch10_variants(bases: Sequence[str]) -> list[tuple[str, str, dict]]:
    """(run-name prefix, loss, loss_kwargs) of each base loss without and with CLOA's
    anchor term: ``infonce``/``cloa`` and ``dcl``/``cloa_dcl``."""
    out = []
    for base in bases:
        plain = "cloa" if base == "infonce" else f"cloa_{base}"
        anchor_kwargs = (
            {"tau": 0.5} if base == "infonce" else {"tau": 0.5, "base": base}
        )
        out += [(base, base, {"tau": 0.5}), (plain, "cloa", anchor_kwargs)]
    return out


def _ch10(tier: str) -> dict[str, list[PlannedRun]]:
    spec = _tier(tier)["ch10"]
    track = spec["track"]
    batch = spec.get("batch", 128)
    variants = _ch10_variants(spec.get("bases", ("infonce",)))
    sections: dict[str, list[PlannedRun]] = {"key rates": [], "sweep": [], "long": []}
    for eta in spec["lrs"]:
        for prefix, loss, loss_kwargs in variants:
            args = _ch10_args(spec, loss, loss_kwargs, eta, batch, track)
            section = (
                "key rates"
                if any(math.isclose(eta, k) for k in _CH10_KEY_RATES)
                else "sweep"
            )
            rank = next(
                (i for i, k in enumerate(_CH10_KEY_RATES) if math.isclose(eta, k)), None
            )
            # large rates first
            sub = rank if rank is not None else -math.log10(eta) / 100
            sections[section].append(
                PlannedRun(
                    f"{prefix}_lr{eta:g}",
                    args,
                    "ch10",
                    tier,
                    section,
                    track,
                    PRIORITY[("ch10", section)] + sub / 10,
                    key=prefix,
                )
            )
    long = spec.get("long")
    if long:
        for run in sections["key rates"] + sections["sweep"]:
            eta = _eta(run)
            if any(math.isclose(eta, k) for k in long["lrs"]):
                sections["long"].append(
                    PlannedRun(
                        "long_" + run.name,
                        dict(run.args, epochs=long["epochs"], eval_every=long["track"]),
                        "ch10",
                        tier,
                        "long",
                        long["track"],
                        PRIORITY[("ch10", "long")] + 0.5,
                        key=run.key,
                    )
                )
    # definition order of the quick grid: losses outer, rates inner
    prefixes = [v[0] for v in variants]
    for key in ("key rates", "sweep", "long"):
        sections[key].sort(
            key=lambda r: (
                prefixes.index(r.name.removeprefix("long_").rsplit("_lr", 1)[0]),
                spec["lrs"].index(_eta(r)),
            )
        )
    sections.update(_ch10_sweeps(tier, spec, batch, track))
    if _tier(tier).get("baseline"):
        first = (sections["key rates"] + sections["sweep"])[0]
        sections = {"baseline": _baseline(tier, "ch10", first.args), **sections}
    return sections


def _ch10_args(
    spec: Mapping, loss: str, loss_kwargs: Mapping, eta: float, batch: int, track: int
) -> dict:
    """The trainer's flags of a chapter-10 run: peak lr ``eta``, constant (the CLI's
    --lr is per 256 images: at batch 128 it gets 2 * eta), no projector."""
    args = dict(
        dataset="cifar10",
        loss=loss,
        loss_kwargs=dict(loss_kwargs),
        **spec["size"],
        batch_size=batch,
        lr=eta * 256 / batch,
        warmup_epochs=0.0,
        min_lr_ratio=1.0,
        proj_layers=0,
    )
    if loss == "cloa":
        args["label_fraction"] = 0.1
    if track:
        args["eval_every"] = track
    return args


def _ch10_sweeps(
    tier: str, spec: Mapping, batch: int, track: int
) -> dict[str, list[PlannedRun]]:
    """Chapter 10's controls (where a tier plans them): the anchor term alone, the
    rate against weight decay, and the CLOA paper's protocol."""
    out: dict[str, list[PlannedRun]] = {}

    def run(name, key, section, args, every=track):
        priority = PRIORITY[("ch10", section)]
        return PlannedRun(name, args, "ch10", tier, section, every, priority, key=key)

    if spec.get("anchor only"):
        out["anchor only"] = [
            run(
                f"anchor_lr{eta:g}",
                "anchor",
                "anchor only",
                _ch10_args(spec, *ANCHOR_ONLY, eta, batch, track),
            )
            for eta in spec["anchor only"]
        ]
    step = spec.get("effective step")
    if step:
        out["effective step"] = []
        for prefix, loss, kwargs in _ch10_variants(("infonce",)):
            for eta in step["lrs"].get(prefix, ()):
                for wd in step["weight_decays"]:
                    args = _ch10_args(spec, loss, kwargs, eta, batch, track)
                    args["weight_decay"] = wd
                    name = f"step_{prefix}_lr{eta:g}_wd{wd:g}"
                    out["effective step"].append(
                        run(name, prefix, "effective step", args)
                    )
    paper = spec.get("paper protocol")
    if paper:
        out["paper protocol"] = []
        variants = _ch10_variants(("infonce",)) + [("anchor", *ANCHOR_ONLY)]
        for prefix, loss, kwargs in variants:
            for eta in paper["lrs"]:
                args = _ch10_args(
                    spec, loss, kwargs, eta, paper["batch"], paper["track"]
                )
                args.update(
                    epochs=paper["epochs"],
                    weight_decay=0.0,
                    augment_kwargs=dict(WEAK_AUGMENT),
                )
                name = f"paper_{prefix}_lr{eta:g}"
                out["paper protocol"].append(
                    run(name, prefix, "paper protocol", args, paper["track"])
                )
    return out


def _eta(run: PlannedRun) -> float:
    """The peak learning rate of a chapter-10 run (its --lr is per 256 images)."""
    return run.args["lr"] * run.args["batch_size"] / 256


# --------------------------------------------------------------------------- chapter 11
def _ch11_run(
    tier: str,
    key: str,
    section: str,
    batch_size: int | None = None,
    tau: float | None = None,
    dataset: str = "cifar10",
    epochs: int | None = None,
    gamma: float | None = None,
) -> PlannedRun:
    spec = _tier(tier)["ch11"]
    recipe = spec.get("recipe", "ours")
    loss, kwargs = SUPERVISED if key == "supcon" else {**LOSSES, **MORE_LOSSES}[key]
    kwargs = dict(kwargs, **({} if tau is None else {"tau": tau}))
    if gamma is not None:  # KCL's energy weight (its default, 16, keeps the name)
        kwargs["gamma"] = gamma
    b, size = batch_size or spec["batch"], dict(spec["size"])
    main_epochs = size["epochs"]
    if dataset == "tiny-imagenet-32":  # twice CIFAR's images: its own size
        size.update(spec["tiny"]["size"])
    if epochs is not None:
        size["epochs"] = epochs
    args = dict(dataset=dataset, loss=loss, loss_kwargs=kwargs, **size, batch_size=b)
    args = _with_recipe(args, recipe)
    if loss == "cloa":
        args["label_fraction"] = 0.1
    track = 0  # geometry and kNN along training: the main and the longer runs only
    if section in ("losses", "more losses"):
        track = spec["track"]
    elif section == "length":
        track = spec["length"]["track"]
    if track:
        args["eval_every"] = track  # the main runs: kNN along training
    tag = f"_t{kwargs['tau']:g}" if "tau" in kwargs else ""
    tag += f"_g{gamma:g}" if gamma is not None and gamma != 16 else ""
    tag += f"_e{size['epochs']}" if size["epochs"] != main_epochs else ""
    prefix = {"cifar10": "", "tiny-imagenet-32": "tiny_", "cifar100": "c100_"}[dataset]
    sub = _HEADLINE_ORDER.index(key) / 100 if key in _HEADLINE_ORDER else 0.0
    return PlannedRun(
        f"{prefix}{key}_b{b}{tag}",
        args,
        "ch11",
        tier,
        section,
        track,
        PRIORITY[("ch11", section)] + sub,
        recipe=recipe,
        key=key,
    )


def _fixed_steps_epochs(epochs: int, batch: int, main_batch: int) -> int:
    """Epochs at batch ``batch`` that take the steps of ``epochs`` epochs at
    ``main_batch`` (steps per epoch are proportional to 1 / batch)."""
    return max(1, round(epochs * batch / main_batch))


def _ch11_optional(tier: str, spec: Mapping[str, Any]) -> dict[str, list[PlannedRun]]:
    """The sections of chapter 11 that only some tiers plan, in the chapter's order."""
    be = spec.get("batch_epochs")
    sections: dict[str, list[PlannedRun]] = {}
    if spec.get("more losses"):  # the losses a tier runs only if time allows
        sections["more losses"] = [
            _ch11_run(tier, k, "more losses") for k in spec["more losses"]
        ]
    if spec.get("batch_steps"):  # the same number of steps at every batch size
        sections["batch steps"] = [
            _ch11_run(
                tier,
                k,
                "batch steps",
                batch_size=b,
                epochs=_fixed_steps_epochs(be, b, spec["batch"]),
            )
            for k in ("simclr", "dhel")
            for b in spec["batch_steps"]
        ]
    if spec.get("tau seeds"):
        sections["tau seeds"] = [
            _ch11_run(tier, k, "tau seeds", tau=t)
            for k in spec["tau seeds"]["losses"]
            for t in spec["tau seeds"]["taus"]
        ]
    kcl = spec.get("kcl")
    if kcl:  # KCL's batch sweep (fixed epochs, fixed steps) and its gamma
        sections["kcl batch"] = [
            _ch11_run(tier, "kcl", "kcl batch", batch_size=b, epochs=be)
            for b in kcl["batches"]
        ]
        sections["kcl batch steps"] = [
            _ch11_run(
                tier,
                "kcl",
                "kcl batch steps",
                batch_size=b,
                epochs=_fixed_steps_epochs(be, b, spec["batch"]),
            )
            for b in spec["batch_steps"]
        ]
        sections["kcl gamma"] = [
            _ch11_run(tier, "kcl", "kcl gamma", gamma=g) for g in kcl["gammas"]
        ]
    if spec.get("non-contrastive"):
        sections["non-contrastive"] = [
            _ch11_run(tier, k, "non-contrastive") for k in spec["non-contrastive"]
        ]
    if spec.get("length"):  # the main runs, trained longer
        sections["length"] = [
            _ch11_run(tier, k, "length", epochs=spec["length"]["epochs"])
            for k in spec["length"]["losses"]
        ]
    if spec.get("supervised"):  # the same network and budget, with every label
        sections["supervised"] = [_ch11_run(tier, "supcon", "supervised")]
    return sections


def _ch11(tier: str) -> dict[str, list[PlannedRun]]:
    spec = _tier(tier)["ch11"]
    be = spec.get("batch_epochs")
    sections = {
        "losses": [
            _ch11_run(tier, k, "losses") for k in spec.get("losses", tuple(LOSSES))
        ],
        "batch": [
            _ch11_run(tier, k, "batch", batch_size=b, epochs=be)
            for k in ("simclr", "dhel")
            for b in spec.get("batches", ())
        ],
        "tau": [
            _ch11_run(tier, k, "tau", tau=t)
            for k in ("simclr", "dhel")
            for t in spec.get("taus", ())
        ],
        "tiny": [
            _ch11_run(tier, k, "tiny", dataset="tiny-imagenet-32")
            for k in spec.get("tiny", {}).get("losses", ())
        ],
    }
    sections.update(_ch11_optional(tier, spec))
    if _tier(tier).get("baseline"):
        main = sections["losses"][0].args
        tiny = sections["tiny"][0].args if sections["tiny"] else None
        sections = {
            "baseline": _baseline(tier, "ch11", main)
            + (_baseline(tier, "ch11", tiny, "tiny_untrained") if tiny else []),
            **sections,
        }
    if spec["cifar100"]:  # torchvision's CIFAR-100, where it is on disk or downloadable
        sections["cifar100"] = [
            _ch11_run(tier, k, "cifar100", dataset="cifar100") for k in LOSSES
        ]
        if "baseline" in sections:  # its table's untrained rows
            c100 = sections["cifar100"][0].args
            sections["baseline"] += _baseline(tier, "ch11", c100, "c100_untrained")
    return sections


# --------------------------------------------------------------------------- chapter 12
def _ch12(tier: str) -> dict[str, list[PlannedRun]]:
    spec = _tier(tier)["ch12"]
    recipe = spec.get("recipe", "ours")
    sections: dict[str, list[PlannedRun]] = {"imagenette": []}
    for i, key in enumerate(spec["losses"]):
        loss, kwargs = LOSSES[key]
        args = dict(
            dataset="imagenette-96", loss=loss, loss_kwargs=dict(kwargs), **spec["size"]
        )
        args = _with_recipe(args, recipe)
        if loss == "cloa":
            args["label_fraction"] = 0.1
        track = spec.get("track", 0)
        if track:  # kNN along training
            args["eval_every"] = track
        # SimCLR and DHEL first: the comparison the chapter draws
        sections["imagenette"].append(
            PlannedRun(
                f"imagenette_{key}",
                args,
                "ch12",
                tier,
                "imagenette",
                track,
                PRIORITY[("ch12", "imagenette")] + (0 if i < 2 else 0.5) + i / 100,
                recipe=recipe,
                key=key,
            )
        )
    if _tier(tier).get("baseline"):
        first = sections["imagenette"][0].args
        sections = {
            "baseline": _baseline(tier, "ch12", first, "imagenette_untrained"),
            **sections,
        }
    if spec["imagenet100"]:  # real ImageNet-100 ($CL_LIB_IMAGENET): hours, not a lease
        sections["imagenet100"] = [
            PlannedRun(
                f"in100_{arch}_{key}",
                _with_recipe(
                    dict(
                        dataset="imagenet100",
                        loss=LOSSES[key][0],
                        loss_kwargs=dict(LOSSES[key][1]),
                        arch=arch,
                        epochs=PAPER_EPOCHS,
                        batch_size=256,
                    ),
                    recipe,
                ),
                "ch12",
                tier,
                "imagenet100",
                0,
                PRIORITY[("ch12", "imagenet100")],
                lease=False,
                recipe=recipe,
                key=key,
            )
            for arch in ("resnet18", "resnet50")
            for key in ("simclr", "dhel", "kcl")
        ]
        if _tier(tier).get("baseline"):  # each encoder untrained, on ImageNet-100
            for arch in ("resnet18", "resnet50"):
                first = next(
                    r for r in sections["imagenet100"] if r.args["arch"] == arch
                )
                sections["baseline"] += [  # with the ImageNet-100 runs: not a lease
                    dataclasses.replace(run, lease=False)
                    for run in _baseline(
                        tier, "ch12", first.args, f"in100_{arch}_untrained"
                    )
                ]
    return sections


_BUILDERS = {"ch06": _ch06, "ch10": _ch10, "ch11": _ch11, "ch12": _ch12}


def chapter_grid(chapter: str, tier: str) -> dict[str, list[PlannedRun]]:
    """A chapter's planned runs of one tier, by section (``{"losses": [...], ...}``).

    A run shared by two sections (chapter 11's SimCLR at the main batch size is in the
    losses, batch and temperature sections) is the same name, hence one results file.
    """
    if chapter not in _BUILDERS:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {CHAPTERS}")
    if chapter not in _tier(tier):  # a tier that plans only some chapters
        return {}
    sections = _BUILDERS[chapter](tier)
    seeds = _tier(tier)["seeds"]
    seeded = _tier(tier).get("seeded")  # None: every section gets every seed
    headline = _tier(tier).get("headline", {})
    more = headline.get(chapter, {})  # section -> names that get the extra seeds
    return {
        k: _seeded(v, seeds if seeded is None or k in seeded else seeds[:1])
        + _seeded(
            [r for r in v if r.name in more.get(k, ())], headline.get("seeds", ())
        )
        for k, v in sections.items()
    }


def planned_runs(
    tier: str, chapters: Sequence[str] | str | None = None, ordered: bool = True
) -> list[PlannedRun]:
    """Every planned run of a tier (one per results file), in priority order.

    Args:
        tier: a key of :data:`TIERS`.
        chapters: one chapter or several (default: all of :data:`CHAPTERS`).
        ordered: runs that fit a lease first, then by section priority, seed and
            priority (else chapter and definition order).

    Returns:
        list of :class:`PlannedRun`, each name once per chapter (the first section that
        plans it keeps it, so a shared run records geometry if its main section does).
    """
    chapters = (
        CHAPTERS
        if chapters is None
        else [chapters]
        if isinstance(chapters, str)
        else list(chapters)
    )
    runs: list[PlannedRun] = []
    for ch in chapters:
        seen: set[str] = set()
        for section_runs in chapter_grid(ch, tier).values():
            for run in section_runs:
                if run.name not in seen:
                    seen.add(run.name)
                    runs.append(run)
    if ordered:
        # Runs that fit a lease first; then sections by priority; inside a section
        # seed-major, so that every comparison gets its first seed before any gets its
        # second (a campaign stopped halfway leaves one seed of everything, not three of
        # half); stable on ties.
        runs = sorted(
            runs,
            key=lambda r: (
                not r.lease,
                PRIORITY.get((r.chapter, r.section), r.priority),
                int(r.args.get("seed", 0)),
                r.priority,
            ),
        )
    return runs


# ----------------------------------------------------------------------------- commands
def _cli_value(v: Any) -> str:
    if isinstance(v, Mapping):
        return json.dumps(dict(v), separators=(",", ":"))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def train_flags(run: PlannedRun, profile: str | None = None) -> list[str]:
    """The trainer's flags of a run: ``["--profile", P, "--dataset", "cifar10", ...]``
    (dashes for underscores, dicts as JSON, ``None`` values left out); unquoted."""
    if profile is None:
        profile = TIERS[run.tier]["profile"] if run.tier in TIERS else "full"
    flags = ["--profile", profile]
    for k, v in run.args.items():
        if v is not None:
            flags += ["--" + k.replace("_", "-"), _cli_value(v)]
    return flags


def cli_command(
    run: PlannedRun,
    results_dir: str | None = None,
    profile: str | None = None,
    record: bool = True,
    track_every: int | None = None,
    runs_dir: str = "runs",
) -> str:
    """The exact shell command of a planned run (run from the repository root).

    ``record=True`` (what the chapters use): the trainer wrapped by
    ``cl_lib.experiments.results``, so the file also gets the geometry ``"extra"``::

        python -m cl_lib.experiments.results <results_dir>/<name>.json [--track-every K]
        \
            -- --profile <profile> --dataset cifar10 ...

    ``record=False``: the bare trainer, whose ``--out`` folder gets ``results.json`` and
    a checkpoint; only the JSON is copied into the book.

    Args:
        run: the planned run.
        results_dir: default ``book/results/<tier>/<chapter>``.
        profile: the trainer's profile; default the tier's.
        track_every: default the run's own ``track_every``.
    """
    if results_dir is None:
        if run.chapter not in CHAPTERS:
            raise ValueError(f"run {run.name!r} has no chapter: pass results_dir")
        results_dir = "book/" + results_dir_rel(run)
    track = run.track_every if track_every is None else track_every
    flags = [shlex.quote(f) for f in train_flags(run, profile)]
    dest = results_dir.rstrip("/")
    if record:
        head = ["python", "-m", "cl_lib.experiments.results", f"{dest}/{run.name}.json"]
        head += ["--track-every", str(track)] if track else []
        return " ".join(head + ["--"] + flags)
    out = f"{runs_dir.rstrip('/')}/{run.name}"
    return " ".join(
        ["python", "-m", "cl_lib.train"]
        + flags
        + [
            "--out",
            out,
            "&&",
            "mkdir",
            "-p",
            dest,
            "&&",
            "cp",
            f"{out}/results.json",
            f"{dest}/{run.name}.json",
        ]
    )


def wrap_command(command: str, width: int = 88) -> str:
    """A shell command broken into lines of at most ``width`` characters (where its
    words allow) with ``\\`` continuations, so that a printed command still pastes into
    a shell."""
    if width < 20:
        raise ValueError(f"width must be >= 20, got {width}")
    lines, line = [], ""
    words = shlex.split(command)
    quoted = [shlex.quote(w) if w not in ("&&",) else w for w in words]
    units: list[str] = []  # a flag stays on one line with its value (if they fit)
    for word in quoted:
        if (
            units
            and units[-1].startswith("--")
            and units[-1] != "--"
            and " " not in units[-1]
            and not word.startswith("--")
            and len(units[-1]) + 1 + len(word) <= width - 6
        ):
            units[-1] += " " + word
        else:
            units.append(word)
    for word in units:
        if line and len(line) + 1 + len(word) > width - 2:
            lines.append(line + " \\")
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def results_dir_rel(run: PlannedRun) -> str:
    """``results/<tier>/<chapter>``: the run's folder relative to ``book/``."""
    return results_dir(run.tier, run.chapter, root="results")


def missing_runs(
    planned: Sequence[PlannedRun], records: Iterable[Mapping]
) -> list[PlannedRun]:
    """Planned runs that have no results file among ``records`` (matched by run
    name)."""
    from cl_lib.experiments.results import run_name

    have = {run_name(r) for r in records}
    return [p for p in planned if p.name not in have]


# ---------------------------------------------------------------------------- estimates
def gflop_per_view(arch: str, image_side: int, width: int = 16) -> float:
    """Forward GFLOP of one view (approximate; only ratios between runs are used).

    ResNet-18 with the CIFAR stem at 32 px is about 0.56 GFLOP; the ImageNet stem (from
    96 px up) costs 1.82 GFLOP at 224 px, scaling with the pixel count. ResNet-50: 1.30
    / 4.1. The small convnet: about 0.01 GFLOP at width 16 and 32 px.
    """
    scale = (image_side / 224) ** 2
    if arch in ("resnet18", "cifar_resnet18"):
        return 0.56 * (image_side / 32) ** 2 if image_side < 96 else 1.82 * scale
    if arch in ("resnet50", "cifar_resnet50"):
        return 1.30 * (image_side / 32) ** 2 if image_side < 96 else 4.1 * scale
    return 0.01 * (width / 16) ** 2 * (image_side / 32) ** 2


def views_per_run(run: PlannedRun) -> int:
    """Augmented views a run trains on: epochs x training images x 2."""
    a = run.args
    n = DATASET_TRAIN_SIZE.get(a.get("dataset", "cifar10"), 50_000)
    if a.get("subset"):
        n = min(n, int(a["subset"]))
    return 2 * n * int(a.get("epochs", PAPER_EPOCHS))


def batch_efficiency(batch_size: int) -> float:
    """Share of the batch-512 throughput assumed at a smaller batch, $\\sqrt{B/512}$
    (capped at 1): small batches leave a large GPU partly idle. A conservative guess
    that a campaign replaces by measured rates as runs finish."""
    return min(1.0, math.sqrt(batch_size / REFERENCE_BATCH))


def image_side(args: Mapping[str, Any]) -> int:
    """The side of the views a run's network sees: its ``image_size`` if set, else
    its data set's native side."""
    native = DATASET_IMAGE_SIDE.get(args.get("dataset", "cifar10"), 32)
    return int(args.get("image_size") or native)


def estimate_seconds(
    run: PlannedRun,
    gflops: float,
    overhead_s: float = 30.0,
    per_snapshot_s: float = 3.0,
) -> float:
    """Estimated wall time of a run.

    Args:
        run: the planned run.
        gflops: measured training rate in forward-GFLOP per second at batch 512
            (views/s times :func:`gflop_per_view`; e.g. 40,000 x 0.56 = 22,400).
        overhead_s: per run: start-up, data loading, final evaluation.
        per_snapshot_s: per geometry snapshot along training.

    Returns:
        seconds: views x GFLOP per view / (gflops x batch efficiency) + overheads.
    """
    if gflops <= 0:
        raise ValueError(f"gflops must be > 0, got {gflops}")
    a = run.args
    side = image_side(a)
    cost = gflop_per_view(a.get("arch", "resnet18"), side, a.get("width", 16))
    rate = gflops * batch_efficiency(int(a.get("batch_size", REFERENCE_BATCH)))
    epochs = int(a.get("epochs", PAPER_EPOCHS))
    snapshots = epochs // run.track_every if run.track_every else 0
    return views_per_run(run) * cost / rate + overhead_s + per_snapshot_s * snapshots


def cpu_seconds(
    run: PlannedRun,
    images_per_s: float = CPU_STUDY_IMAGES_PER_S,
    overhead_s: float = CPU_STUDY_OVERHEAD_S,
    per_snapshot_s: float = CPU_STUDY_SNAPSHOT_S,
) -> float:
    """Estimated wall time of a small-network run on a CPU (the cpu-study tier).

    Args:
        run: the planned run.
        images_per_s: source images per second at 32 px (two views each; a tier's
            own ``"images_per_s"`` replaces it); larger
            images cost in proportion to their pixels, small batches 10% more below
            batch 128 (more steps).
        overhead_s: per run at 32 px with 10k training and 10k test images
            (evaluation scales with the images and their pixels).
        per_snapshot_s: per geometry snapshot along training.

    Returns:
        seconds.
    """
    images_per_s = _tier(run.tier).get("images_per_s", images_per_s)
    if images_per_s <= 0:
        raise ValueError(f"images_per_s must be > 0, got {images_per_s}")
    a = run.args
    pixels = (image_side(a) / 32) ** 2
    step_cost = 1.1 if int(a.get("batch_size", 256)) < 128 else 1.0
    train = views_per_run(run) / 2 * pixels * step_cost / images_per_s
    epochs = int(a.get("epochs", PAPER_EPOCHS))
    snapshots = epochs // run.track_every if run.track_every else 0
    # evaluation: every training and test image once (10k + 10k at the reference)
    n_train = views_per_run(dataclasses.replace(run, args=dict(a, epochs=1))) / 2
    n_eval = (n_train + int(a.get("test_subset") or 10_000)) / 20_000
    return train + overhead_s * pixels * n_eval + per_snapshot_s * snapshots


def dataset_available(name: str, data_root: str | Path | None = None) -> bool:
    """Whether a bare machine can read a data set: its archive is in ``$CL_LIB_DATA``
    (``cifar10``, ``tiny-imagenet-32``, ``imagenette-96``), ``$CL_LIB_IMAGENET`` is set
    (``imagenet100``), or torchvision's copy is in the data folder (``cifar100``)."""
    root = (
        Path(data_root)
        if data_root
        else (
            Path(os.environ["CL_LIB_DATA"]).expanduser()
            if os.environ.get("CL_LIB_DATA")
            else None
        )
    )
    if name in _ARCHIVES:
        return root is not None and (root / _ARCHIVES[name]).is_file()
    if name == "imagenet100":
        return bool(os.environ.get("CL_LIB_IMAGENET"))
    if name == "cifar100":
        return root is not None and (root / "cifar-100-python").is_dir()
    return False

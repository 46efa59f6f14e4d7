r"""One GPU lease, one command: benchmarks plus as many full runs as fit.

A lent GPU machine (one H200) gives a session 15 minutes of device time, 10 minutes per
command, and starts bare. ``run`` turns one such command into results::

    python -m cl_lib.campaign run --budget-s 500 --out DIR [--device cuda|cpu] \
        [--profile full|quick]

1. prints the environment (GPU, memory, torch/torchvision versions, library commit);
2. benchmarks for at most ``--bench-budget-s`` seconds (``benchmarks/run_all.py``; its
   end-to-end file gives the measured views/s of the GPU-resident pipeline; without it,
   the one an earlier lease filed into ``benchmarks/results/``, else the first run's own
   throughput);
3. runs the pending runs of the tier's grid (:mod:`cl_lib.experiments.grid`: those with
   no results file under ``book/results/<tier>/<chapter>/``) in the grid's priority
   order, starting a run only when its estimated time (from the throughput just
   measured) fits the remaining budget. A run still going at the deadline is stopped and
   reported as ``cut off``, never as finished.

``DIR`` receives three files, within the device's return limits (8 files, 16 MiB each):
``campaign.json`` (the manifest: environment, benchmark, throughput, every run's status,
estimate and wall time), ``campaign.log`` (everything printed) and ``results.tar.gz``
(``runs/<chapter>/<name>.json`` and ``bench/*.json``), rewritten after every finished
run so that a command killed at its limit still returns what was done.

On a CPU (the ``cpu-study`` tier, in the background, across sessions)::

    OMP_NUM_THREADS=1 nohup python -m cl_lib.campaign run --tier cpu-study \
        --device cpu --bench-budget-s 0 --budget-s 5400 --out DIR --into-book &

``--into-book`` files every finished run into ``book/results/<tier>/<chapter>/`` as
soon as it finishes (atomically, with the provenance ``unpack`` adds), so a campaign
killed at any point leaves only finished runs there, and the next call skips them.
On a CPU each run also checkpoints every epoch under ``<work-dir>/checkpoints/``: with
the same ``--work-dir`` (e.g. ``--work-dir campaign-work``) the next call resumes a
stopped run from its last epoch, exactly (the ``cpu-long`` tier's runs last an hour).

``python -m cl_lib.campaign unpack DIR`` files the finished runs into
``book/results/<tier>/<chapter>/`` and the benchmark files into ``benchmarks/results/``,
each with its provenance (config, GPU, torch, commit, date, wall time) under
``"campaign"``. ``python -m cl_lib.campaign plan`` prints the grid with its estimates.

The machine has no ``.git``: the commit is read from ``git`` where there is one, else
from ``$CL_LIB_COMMIT`` or ``.data/COMMIT`` (``<sha> <number of changed files under
cl_lib>``, written before the call; see the README's GPU section).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from cl_lib.experiments import grid as G
from cl_lib.io import write_atomic, write_json

__all__ = [
    "environment",
    "bench_views_per_s",
    "pending_runs",
    "run_campaign",
    "unpack",
    "main",
    "MANIFEST",
    "ARCHIVE",
    "LOG",
]

REPO = Path(__file__).resolve().parents[2]
MANIFEST, ARCHIVE, LOG = "campaign.json", "results.tar.gz", "campaign.log"
_RESERVE_S = 10.0  # kept free at the end: packing the results
_DEFAULT_OVERHEAD_S = 30.0  # per run, until measured: start-up, data, evaluation


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -------------------------------------------------------------------------- environment
def _commit() -> tuple[str, bool | None, str]:
    """(commit, dirty, where it came from): git, else $CL_LIB_COMMIT, else
    .data/COMMIT."""
    from cl_lib.io import library_commit

    commit, dirty = library_commit(only_loaded=True)
    if commit != "unknown":
        return commit, dirty, "git"
    if os.environ.get("CL_LIB_COMMIT"):
        return os.environ["CL_LIB_COMMIT"].strip(), None, "CL_LIB_COMMIT"
    path = REPO / ".data" / "COMMIT"
    if path.is_file():
        parts = path.read_text().split()
        if parts:
            dirty = (
                bool(int(parts[1])) if len(parts) > 1 and parts[1].isdigit() else None
            )
            return parts[0], dirty, ".data/COMMIT"
    return "unknown", None, "none"


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (how busy the machine was), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def environment(device: str) -> dict:
    """What the campaign runs on: device, GPU name and memory, CPU count, Python, torch
    and torchvision versions, library commit (and whether ``cl_lib`` had uncommitted
    changes), date.

    Args:
        device: ``"cuda"`` or ``"cpu"``.

    Returns:
        dict of plain JSON values.
    """
    import torch
    import torchvision

    env = {
        "device": device,
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "load_average": _load_average(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        "gpu": None,
        "gpu_memory_gib": None,
        "cuda": torch.version.cuda,
        "date_utc": _now(),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
        )
    env["commit"], env["library_dirty"], env["commit_source"] = _commit()
    return env


# ---------------------------------------------------------------------------- benchmark
def bench_views_per_s(bench_dir: str | Path, device: str = "cuda") -> dict | None:
    """The measured end-to-end training rate of the GPU-resident pipeline.

    Reads ``e2e_<device>.json`` written by ``benchmarks/run_all.py``: its
    ``gpu_resident_views_per_s`` (augmented views per second of ResNet-18 with the CIFAR
    stem, GPU-resident loader and batched augmentation, the trainer's device defaults)
    at its ``batch_size``.

    Returns:
        ``{"views_per_s", "batch_size", "arch", "file"}``, or None when the file or the
        value is absent (a benchmark cut off before measuring it).
    """
    path = Path(bench_dir) / f"e2e_{device}.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    value = doc.get("gpu_resident_views_per_s")
    if not isinstance(value, (int, float)) or value <= 0:
        return None
    return {
        "views_per_s": float(value),
        "batch_size": int(doc.get("batch_size") or 512),
        "arch": str(doc.get("model") or "resnet18"),
        "file": path.name,
    }


def _run_bench(device: str, budget_s: float, out_dir: Path, log) -> dict:
    script = REPO / "benchmarks" / "run_all.py"
    info: dict = {"budget_s": budget_s, "script": "benchmarks/run_all.py"}
    if budget_s <= 0:
        info["status"] = "skipped (budget 0)"
        return info
    if not script.is_file():
        info["status"] = "skipped (benchmarks/run_all.py not in this checkout)"
        return info
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        str(script),
        "--device",
        device,
        "--budget-s",
        f"{budget_s:g}",
        "--out-dir",
        str(out_dir),
    ]
    t0 = time.perf_counter()
    status, rc = _stream(cmd, timeout=budget_s + 30, prefix="[bench] ", log=log)
    info.update(
        status=status,
        returncode=rc,
        wall_s=round(time.perf_counter() - t0, 1),
        files=sorted(p.name for p in out_dir.glob("*.json")),
    )
    return info


# ---------------------------------------------------------------------------- processes
def _stream(
    cmd: Sequence[str], timeout: float, prefix: str, log
) -> tuple[str, int | None]:
    """Run ``cmd`` (its own process group), copying its output to ``log`` line by line;
    stop it after ``timeout`` seconds. Returns (``"ok"``, ``"failed"`` or ``"cut off"``,
    return code)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        cwd=str(REPO),
        env=env,
        start_new_session=True,
    )

    def pump():
        for line in proc.stdout:
            log(prefix + line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group, nothing else
        proc.wait()
        reader.join(timeout=5)
        return "cut off", None
    reader.join(timeout=5)
    return ("ok" if rc == 0 else "failed"), rc


class _Log:
    """Print and keep every line (the log file is written with the results)."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            print(line, flush=True)
            self.lines.append(line)

    def write(self) -> None:
        with self.lock:
            text = "\n".join(self.lines) + "\n"
        _write_atomic_bytes(self.path, text.encode())


def _write_atomic_bytes(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through :func:`cl_lib.io.write_atomic` (fsync, rename)."""
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


# ----------------------------------------------------------------------------- planning
def pending_runs(
    tier: str,
    results_root: str | Path,
    chapters: Sequence[str] | None = None,
    sections: Sequence[str] | None = None,
) -> tuple[list, list[dict]]:
    """The runs a campaign may start, in priority order, and the ones it may not.

    Args:
        tier: a tier of :data:`cl_lib.experiments.grid.TIERS`.
        results_root: the folder holding ``<tier>/<chapter>/<name>.json``.
        chapters: restrict to these chapters (default all).
        sections: restrict to these sections of the grid (e.g. ``["baseline"]``).

    Returns:
        (runs without a results file that fit a lease and whose data set is on this
        machine, ``[{"name", "chapter", "status": "skipped", "reason"}]`` for the others
        that have no results file).
    """
    root = Path(results_root)
    runnable, skipped = [], []
    for run in G.planned_runs(tier, chapters):
        if sections is not None and run.section not in sections:
            continue
        if (root / tier / run.chapter / f"{run.name}.json").is_file():
            continue
        dataset = run.args.get("dataset", "cifar10")
        reason = (
            "longer than one lease (a GPU server run)"
            if not run.lease
            else None
            if G.dataset_available(dataset)
            else f"data set {dataset} not on this machine"
        )
        if reason:
            skipped.append(
                {
                    "name": run.name,
                    "chapter": run.chapter,
                    "status": "skipped",
                    "reason": reason,
                }
            )
        else:
            runnable.append(run)
    return runnable, skipped


class _Rates:
    """Training rate per architecture (forward GFLOP/s at batch 512) and per-run
    overhead, updated from every finished run."""

    def __init__(self):
        self.gflops: dict[str, float] = {}
        self.overheads: list[float] = []
        self.sources: dict[str, str] = {}

    def set_from_views(
        self, arch: str, views_per_s: float, batch_size: int, side: int, source: str
    ) -> None:
        cost = G.gflop_per_view(arch, side)
        # the same network as the grid's resnet18 at 32 px
        arch = arch.replace("cifar_", "")
        self.gflops[arch] = views_per_s * cost / G.batch_efficiency(batch_size)
        self.sources[arch] = source

    def update_from_record(self, run, record: dict, wall_s: float) -> None:
        history = record.get("history") or []
        rate = record.get("images_per_s")
        if not rate and history:
            rate = statistics.median(
                h["images_per_s"] for h in history if "images_per_s" in h
            )
        if rate:
            a = run.args
            side = G.image_side(a)
            cost = G.gflop_per_view(a.get("arch", "resnet18"), side, a.get("width", 16))
            gflops = (
                2
                * float(rate)
                * cost
                / G.batch_efficiency(int(a.get("batch_size", 512)))
            )
            self.gflops[a.get("arch", "resnet18")] = gflops
            self.sources[a.get("arch", "resnet18")] = f"run {run.name}"
        train_s = sum(h.get("epoch_time_s", 0.0) for h in history)
        if train_s > 0:
            self.overheads.append(max(wall_s - train_s, 0.0))

    def summary(self) -> dict:
        """The rates as the manifest records them."""
        return {
            "gflops": {k: round(v, 1) for k, v in self.gflops.items()},
            "sources": self.sources,
            "overhead_s": round(max(self.overheads), 1) if self.overheads else None,
        }

    def estimate(self, run) -> float | None:
        arch = run.args.get("arch", "resnet18")
        if arch not in self.gflops and G.TIERS.get(run.tier, {}).get("device") == "cpu":
            # a CPU tier's network not timed yet: the tier's planning rate, not a
            # benchmark of another network
            return G.cpu_seconds(run)
        gflops = self.gflops.get(arch) or (
            min(self.gflops.values()) if self.gflops else None
        )
        if gflops is None:
            return None
        overhead = max(self.overheads) if self.overheads else _DEFAULT_OVERHEAD_S
        return G.estimate_seconds(run, gflops, overhead_s=overhead)


# ---------------------------------------------------------------------------------- run
def _pack(out: Path, work: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for sub in ("runs", "bench"):
            base = work / sub
            if base.is_dir():
                for f in sorted(base.rglob("*.json")):
                    tar.add(f, arcname=str(f.relative_to(work)))
    _write_atomic_bytes(out / ARCHIVE, buf.getvalue())


def run_campaign(
    budget_s: float,
    out: str | Path,
    device: str = "cuda",
    tier: str = "full",
    bench_budget_s: float = 90.0,
    results_root: str | Path | None = None,
    chapters: Sequence[str] | None = None,
    work_dir: str | Path | None = None,
    max_runs: int | None = None,
    into_book: bool = False,
    sections: Sequence[str] | None = None,
    lane: tuple[int, int] | None = None,
) -> dict:
    """Environment, benchmarks and the pending runs of a tier, within ``budget_s`` s.

    Args:
        budget_s: wall-clock seconds for everything (keep it below the command's limit).
        out: folder for ``campaign.json``, ``campaign.log`` and ``results.tar.gz``.
        device: ``"cuda"`` or ``"cpu"`` (passed to the trainer).
        tier: ``"full"`` (GPU) or ``"quick"`` (the same code path on CPU, for tests).
        bench_budget_s: seconds for ``benchmarks/run_all.py`` (0 skips it).
        results_root: where existing results are looked up (default ``book/results``).
        chapters: restrict to these chapters.
        sections: restrict to these sections of the grid (e.g. ``["baseline"]``).
        work_dir: scratch folder (default a temporary one).
        max_runs: start at most this many runs.
        into_book: also file each finished run into ``results_root`` as soon as it
            finishes (what :func:`unpack` would write; for a CPU campaign in the
            background, which the next call resumes).
        lane: ``(i, n)``: only the pending runs of lane ``i`` of ``n`` (:func:`in_lane`,
            by name, so lanes never overlap), for n one-thread campaigns on one machine.

    Returns:
        the manifest (also written to ``out/campaign.json``).
    """
    t_start = time.perf_counter()
    deadline = t_start + float(budget_s)
    out = _check_campaign_args(budget_s, device, tier, out)
    results_root = Path(results_root) if results_root else REPO / "book" / "results"
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="cl_campaign_"))
    log = _Log(out / LOG)
    env = _log_environment(device, log)
    manifest = _new_manifest(tier, device, budget_s, env)

    def save():
        manifest["wall_time_s"] = round(time.perf_counter() - t_start, 1)
        manifest["finished_utc"] = _now()
        _pack(out, work)
        write_json(manifest, out / MANIFEST)
        log.write()

    rates = _Rates()
    left = deadline - time.perf_counter() - _RESERVE_S
    bench_budget = max(0.0, min(bench_budget_s, left))
    manifest["benchmark"] = _benchmark(device, bench_budget, work, rates, log)
    save()
    runs, skipped = pending_runs(tier, results_root, chapters, sections)
    if lane is not None:
        runs = [run for run in runs if in_lane(run.name, *lane)]
    log(
        f"== runs: {len(runs)} pending in priority order, {len(skipped)} not for this "
        f"machine, {deadline - time.perf_counter():.0f} s left"
    )
    dest = results_root / tier if into_book else None
    _run_pending(
        runs, deadline, max_runs, work, device, rates, dest, manifest, log, save
    )
    manifest["runs"] += skipped
    done = [
        r["name"] for r in manifest["runs"] if r["status"] in ("finished", "diverged")
    ]
    log(
        f"== done: {len(done)} finished ({', '.join(done) or 'none'}), "
        f"{time.perf_counter() - t_start:.0f} s of {budget_s:.0f}"
    )
    save()
    return manifest


def _new_manifest(tier: str, device: str, budget_s: float, env: dict) -> dict:
    """A campaign's manifest before any benchmark or run."""
    return {
        "schema_version": 1,
        "kind": "cl_lib.campaign",
        "tier": tier,
        "device": device,
        "budget_s": budget_s,
        "started_utc": env["date_utc"],
        "environment": env,
        "benchmark": {},
        "runs": [],
        "rates": {},
    }


def in_lane(name: str, lane: int, lanes: int) -> bool:
    """Whether the run ``name`` belongs to lane ``lane`` of ``lanes``: by a hash of
    the name alone, so that every lane agrees on the split whatever results files its
    checkout holds, and a run keeps its lane when others finish."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % lanes == lane


def _run_pending(
    runs, deadline, max_runs, work, device, rates, dest, manifest, log, save
):
    """Start the pending ``runs`` in order while the budget allows (at most
    ``max_runs``), filing each into ``dest/<chapter>`` when given; every entry goes
    into the manifest, which is saved after each run."""
    started = 0
    for run in runs:
        left = deadline - time.perf_counter() - _RESERVE_S
        entry = _entry_if_skipped(run, rates.estimate(run), left, started, max_runs)
        ran = entry["status"] is None
        if ran:
            started += 1
            into = dest / run.chapter if dest is not None else None
            _run_one(run, entry, left, work, device, rates, into, manifest, log)
        manifest["runs"].append(entry)
        if ran:
            manifest["rates"] = rates.summary()
            save()


def _check_campaign_args(budget_s: float, device: str, tier: str, out) -> Path:
    """Refuse a bad budget, device or tier, and an ``out`` folder that holds anything
    but a previous campaign's files; returns ``out``, created."""
    if budget_s <= 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s}")
    if device not in ("cuda", "cpu"):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    if tier not in G.TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {sorted(G.TIERS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [p.name for p in out.iterdir() if p.name not in (MANIFEST, ARCHIVE, LOG)]
    if extra:
        raise ValueError(
            f"--out {out} must be empty or a previous campaign's folder; it "
            f"holds {extra[:3]}"
        )
    return out


_ENV_KEYS = (
    "device",
    "gpu",
    "gpu_memory_gib",
    "cpu_count",
    "python",
    "torch",
    "torchvision",
    "cuda",
    "commit",
    "library_dirty",
    "commit_source",
)


def _log_environment(device: str, log) -> dict:
    env = environment(device)
    log(f"== environment ({env['date_utc']})")
    for k in _ENV_KEYS:
        log(f"   {k}: {env.get(k)}")
    return env


def _benchmark(device: str, budget_s: float, work: Path, rates: _Rates, log) -> dict:
    """Run the benchmarks within ``budget_s`` and set the training rate from the
    end-to-end throughput (this call's, else an earlier lease's filed one); returns
    the manifest's ``"benchmark"`` entry."""
    log(f"== benchmarks (<= {budget_s:.0f} s)")
    bench = _run_bench(device, budget_s, work / "bench", log)
    measured = bench_views_per_s(work / "bench", device)
    if measured is None:  # an earlier lease's benchmark, filed into the repository
        measured = bench_views_per_s(REPO / "benchmarks" / "results", device)
        if measured:
            measured["file"] = "benchmarks/results/" + measured["file"]
    if not measured:
        log(
            "   no end-to-end rate measured: "
            "the first run's own throughput will be used"
        )
        return bench
    bench["end_to_end"] = measured
    rates.set_from_views(
        measured["arch"],
        measured["views_per_s"],
        measured["batch_size"],
        32,
        f"benchmark {measured['file']}",
    )
    log(
        f"   end-to-end: {measured['views_per_s']:,.0f} views/s "
        f"({measured['arch']}, batch {measured['batch_size']}, {measured['file']})"
    )
    return bench


def _entry_if_skipped(run, est, left: float, started: int, max_runs) -> dict:
    """A run's manifest entry, with ``status`` set when it is not started (over
    ``--max-runs``, or its estimate does not fit the time left), else None."""
    entry = {
        "name": run.name,
        "chapter": run.chapter,
        "section": run.section,
        "estimate_s": None if est is None else round(est, 1),
        "status": None,
    }
    if max_runs is not None and started >= max_runs:
        entry.update(status="skipped", reason=f"--max-runs {max_runs} reached")
    elif left <= 1 or (est is not None and est > left):  # None: the timing run
        entry.update(
            status="skipped", reason=f"does not fit the {max(left, 0):.0f} s left"
        )
    return entry


def _run_one(run, entry, left, work, device, rates, dest_dir, manifest, log) -> None:
    """Train one planned run in a subprocess (at most ``left`` seconds), fill its
    manifest ``entry`` and, with ``dest_dir``, file its results into the book."""
    save = work / "runs" / run.chapter / f"{run.name}.json"
    save.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "cl_lib.experiments.results", str(save)]
    cmd += ["--track-every", str(run.track_every)] if run.track_every else []
    cmd += ["--"] + G.train_flags(run) + ["--device", device]
    ckpt = work / "checkpoints" / run.chapter / run.name
    if device == "cpu":  # long CPU runs: a stopped campaign resumes mid-run
        cmd += ["--out", str(ckpt), "--resume"]
    est = entry["estimate_s"]
    what = "unknown (no rate yet)" if est is None else f"{est:.0f} s"
    where = f"{run.name} ({run.chapter}, {run.section})"
    log(f"-- {where}: estimate {what}, {left:.0f} s left")
    t0, cpu0 = time.perf_counter(), _children_cpu_s()
    entry["load_average"] = _load_average()
    status, rc = _stream(cmd, timeout=left, prefix=f"[{run.name}] ", log=log)
    wall = time.perf_counter() - t0
    entry.update(
        wall_s=round(wall, 1),
        cpu_time_s=round(_children_cpu_s() - cpu0, 1),
        finished_utc=_now(),
        returncode=rc,
        command=" ".join(G.cli_command(run).split()),
    )
    record = None
    if status == "ok" and save.is_file():
        try:
            record = json.loads(save.read_text())
        except json.JSONDecodeError:
            status = "failed"
    if status == "ok" and record is not None:
        entry["status"] = "diverged" if record.get("diverged") else "finished"
        rates.update_from_record(run, record, wall)
        if dest_dir is not None:
            dest = dest_dir / f"{run.name}.json"
            write_json(_filed(record, entry, manifest, run), dest)
            entry["filed"] = str(dest)
            log(f"   filed {dest}")
        shutil.rmtree(ckpt, ignore_errors=True)
    else:
        entry["status"] = "cut off" if status == "cut off" else "failed"
        save.unlink(missing_ok=True)  # a cut-off run leaves no results file
    log(f"   {entry['status']} after {wall:.0f} s")


# ------------------------------------------------------------------------------- unpack
def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _filed(doc: dict, entry: dict, manifest: dict, run=None) -> dict:
    """A run's results as filed into the book: ``"campaign"`` provenance (device, GPU
    or CPU, torch, torchvision, date, budget, the run's wall and CPU time and the
    command actually run; the code is identified by the record's one
    ``library_commit``, the trainer's), ``"grid"`` (tier, chapter, section, recipe,
    seed) and ``"command"`` set to the grid's canonical command when ``run`` is given;
    a record
    whose commit is unknown (no ``.git`` on the machine) gets the campaign's."""
    env = manifest["environment"]
    doc["campaign"] = {
        "gpu": env.get("gpu"),
        "device": env.get("device"),
        "cpu": env.get("cpu"),
        "cpu_count": env.get("cpu_count"),
        "omp_num_threads": env.get("omp_num_threads"),
        "torch": env.get("torch"),
        "torchvision": env.get("torchvision"),
        "date_utc": manifest["started_utc"],
        "budget_s": manifest["budget_s"],
        "wall_time_s": entry.get("wall_s"),
        "cpu_time_s": entry.get("cpu_time_s"),
        "load_average_at_start": entry.get("load_average"),
        "finished_utc": entry.get("finished_utc"),
        "command_run": doc.get("command"),
    }
    if doc.get("library_commit", "unknown") == "unknown":
        doc["library_commit"] = env.get("commit", "unknown")
        doc["library_dirty"] = env.get("library_dirty")
        doc["library_commit_source"] = env.get("commit_source")
    if run is not None:
        doc["grid"] = run.metadata()
        doc["command"] = G.cli_command(run)
    return doc


def unpack(
    out: str | Path,
    results_root: str | Path | None = None,
    bench_dir: str | Path | None = None,
    force: bool = False,
) -> dict:
    """File a campaign's results into the book.

    Every finished (or diverged) run goes to
    ``<results_root>/<tier>/<chapter>/<name>.json`` with ``"campaign"`` provenance (GPU,
    torch, torchvision, commit, date, budget, the run's wall time and the command
    actually run) and ``"command"`` set to the grid's canonical command; a record whose
    commit is unknown (no ``.git`` on the machine) gets the campaign's. Benchmark files
    go to ``bench_dir`` (default ``benchmarks/results``) with the same ``"campaign"``
    block. Existing files are kept unless ``force``.

    Returns:
        ``{"runs": [written paths], "bench": [written paths], "kept": [existing
        paths]}``.
    """
    out = Path(out)
    manifest_path, archive = out / MANIFEST, out / ARCHIVE
    if not manifest_path.is_file() or not archive.is_file():
        raise ValueError(
            f"{out} is not a campaign folder: it needs {MANIFEST} and {ARCHIVE}"
        )
    manifest = json.loads(manifest_path.read_text())
    tier, env = manifest["tier"], manifest["environment"]
    results_root = Path(results_root) if results_root else REPO / "book" / "results"
    bench_dir = Path(bench_dir) if bench_dir else REPO / "benchmarks" / "results"
    planned = {(r.chapter, r.name): r for r in G.planned_runs(tier)}
    status = {(r["chapter"], r["name"]): r for r in manifest["runs"]}
    base = {
        "gpu": env.get("gpu"),
        "device": env.get("device"),
        "torch": env.get("torch"),
        "torchvision": env.get("torchvision"),
        "commit": env.get("commit"),
        "library_dirty": env.get("library_dirty"),
        "date_utc": manifest["started_utc"],
        "budget_s": manifest["budget_s"],
    }
    written: dict[str, list[str]] = {"runs": [], "bench": [], "kept": []}

    def write(path: Path, doc: dict) -> None:
        if path.exists() and not force:
            written["kept"].append(str(path))
            return
        write_json(doc, path)
        written["bench" if path.parent == bench_dir else "runs"].append(str(path))

    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not _safe_member(member.name):
                continue
            parts = Path(member.name).parts
            doc = json.loads(tar.extractfile(member).read())
            if parts[0] == "runs" and len(parts) == 3:
                chapter, name = parts[1], Path(parts[2]).stem
                entry = status.get((chapter, name), {})
                if entry.get("status") not in ("finished", "diverged"):
                    continue  # never file a run that did not finish
                doc = _filed(doc, entry, manifest, planned.get((chapter, name)))
                write(results_root / tier / chapter / f"{name}.json", doc)
            elif parts[0] == "bench" and len(parts) == 2:
                if isinstance(doc, dict):
                    doc["campaign"] = base
                write(bench_dir / parts[1], doc)
    return written


# ---------------------------------------------------------------------------------- CLI
def _plan(tier: str, views_per_s: float) -> None:
    gflops = views_per_s * G.gflop_per_view("resnet18", 32)
    total = 0.0
    print(
        f"tier {tier}: estimates at {views_per_s:,.0f} views/s "
        "(ResNet-18, CIFAR, batch 512)"
    )
    on_cpu = G.TIERS[tier].get("device") == "cpu"
    if on_cpu:
        print(f"(on 2 idle CPU cores: {G.CPU_STUDY_IMAGES_PER_S:,.0f} images/s)")
    for run in G.planned_runs(tier):
        est = G.cpu_seconds(run) if on_cpu else G.estimate_seconds(run, gflops)
        total += est if run.lease else 0.0
        a = run.args
        print(
            f"{run.chapter} {run.section:<11} {run.name:<27} "
            f"{a.get('dataset', ''):<16} "
            f"ep {a.get('epochs', '?'):>3} B {a.get('batch_size', '?'):>4} "
            f"{est / 60:6.1f} min{'' if run.lease else '  (GPU server)'}"
        )
    print(f"{'runs' if on_cpu else 'lease runs'} together: {total / 60:.0f} min")


def _lane(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lane wants I/N, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--lane {text}: need 0 <= I < N")
    return i, n


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cl_lib.campaign", description=__doc__.split("\n\n")[0]
    )
    sub = p.add_subparsers(dest="verb", required=True)
    r = sub.add_parser(
        "run", help="environment, benchmarks, pending runs within a budget"
    )
    r.add_argument("--budget-s", type=float, required=True)
    r.add_argument("--out", required=True, help="folder for the three returned files")
    r.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    r.add_argument(
        "--profile", "--tier", dest="tier", choices=sorted(G.TIERS), default="full"
    )
    r.add_argument("--bench-budget-s", type=float, default=90.0)
    r.add_argument("--results-root", default=None, help="default book/results")
    r.add_argument("--chapters", nargs="+", choices=G.CHAPTERS, default=None)
    r.add_argument(
        "--sections", nargs="+", default=None, help="only these grid sections"
    )
    r.add_argument("--work-dir", default=None)
    r.add_argument("--max-runs", type=int, default=None)
    r.add_argument(
        "--lane",
        type=_lane,
        default=None,
        metavar="I/N",
        help="only the pending runs of lane I of N (0-based; split by run name)",
    )
    r.add_argument(
        "--into-book",
        action="store_true",
        help="file each finished run into --results-root as it finishes",
    )
    u = sub.add_parser("unpack", help="file a campaign's results into the book")
    u.add_argument("dir")
    u.add_argument("--results-root", default=None)
    u.add_argument("--bench-dir", default=None)
    u.add_argument("--force", action="store_true")
    pl = sub.add_parser(
        "plan", help="print a tier's runs in priority order with estimates"
    )
    pl.add_argument(
        "--profile", "--tier", dest="tier", choices=sorted(G.TIERS), default="full"
    )
    pl.add_argument("--views-per-s", type=float, default=G.TARGET_VIEWS_PER_S)
    args = p.parse_args(argv)
    if args.verb == "run":
        run_campaign(
            args.budget_s,
            args.out,
            args.device,
            args.tier,
            args.bench_budget_s,
            args.results_root,
            args.chapters,
            args.work_dir,
            args.max_runs,
            args.into_book,
            args.sections,
            args.lane,
        )
    elif args.verb == "unpack":
        done = unpack(args.dir, args.results_root, args.bench_dir, args.force)
        for key in ("runs", "bench", "kept"):
            for path in done[key]:
                print(f"{key if key != 'kept' else 'kept (exists)'}: {path}")
        print(
            f"{len(done['runs'])} run files, "
            f"{len(done['bench'])} benchmark files written"
        )
    else:
        _plan(args.tier, args.views_per_s)
    return 0

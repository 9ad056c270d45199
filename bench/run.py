"""Run the benchmark and print the figures table (markdown).

    python bench/run.py                 # every figure at full size (~15 min on 2 cores)
    python bench/run.py --quick         # tiny sizes: checks the machinery, not the speed
    python bench/run.py --only crl      # one figure (repeatable)

Each figure is a ratio against a baseline measured in the same run. Figures
from other modules (``bench/ui_startup.py``, ``bench/server_bench.py``) are
picked up when present: their ``measure()`` rows are appended to the table.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# bench/ is a plain folder run as a script: make ``bench.*`` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SeededHome  # noqa: E402
from bench.crl_bench import crl_generation  # noqa: E402
from bench.engine_bench import approve_latency, bulk_approve  # noqa: E402

FULL = {"bulk": 200, "bulk_repeats": 3, "latency_sizes": (1_000, 10_000, 100_000), "latency_runs": 20,
        "cli_runs": 5, "crl_sizes": (10_000, 100_000), "crl_repeats": 3}  # fmt: skip
QUICK = {"bulk": 5, "bulk_repeats": 1, "latency_sizes": (20, 40, 80), "latency_runs": 3,
         "cli_runs": 1, "crl_sizes": (10, 30), "crl_repeats": 1}  # fmt: skip

# Modules other engineers own; each offers ``measure() -> list[dict]``.
# name -> (module, label for rows without a "figure" key, goal if rows carry none)
EXTRA_MODULES = {
    "ui-startup": ("bench.ui_startup", "UI start-up to a ready main screen vs an empty Textual app", "≤ 4 (tui-ca ÷ empty app)"),
    "server": ("bench.server_bench", "Server", ""),
    "cli-startup": ("bench.cli_startup", "Command-line start-up vs openssl", ""),
}  # fmt: skip


class Workspace:
    """The run's temporary folder and the seeded home the scale figures share."""

    def __init__(self, root: Path, sizes: dict) -> None:
        self.root = root
        self.sizes = sizes
        self._seeded: SeededHome | None = None

    @property
    def seeded(self) -> SeededHome:
        if self._seeded is None:
            self._seeded = SeededHome(self.root / "scale-home")
        return self._seeded


def _bulk(ws: Workspace) -> list[dict]:
    return bulk_approve(ws.root, count=ws.sizes["bulk"], repeats=ws.sizes["bulk_repeats"])


def _latency(ws: Workspace) -> list[dict]:
    return approve_latency(ws.seeded, sizes=ws.sizes["latency_sizes"], runs=ws.sizes["latency_runs"],
                           cli_runs=ws.sizes["cli_runs"])  # fmt: skip


def _crl(ws: Workspace) -> list[dict]:
    return crl_generation(ws.seeded, ws.root, sizes=ws.sizes["crl_sizes"], repeats=ws.sizes["crl_repeats"])


# Order matters: the CRL figure revokes certificates the latency figure seeded.
FIGURES: dict[str, Callable[[Workspace], list[dict]]] = {
    "bulk-approve": _bulk,
    "approve-latency": _latency,
    "crl": _crl,
}


def _extra(name: str, quick: bool) -> Callable[[Workspace], list[dict]] | None:
    """A guarded import of another engineer's module; None when it is absent."""
    module_name, label, goal = EXTRA_MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, "bench"):
            return None
        raise
    measure = getattr(module, "measure", None)
    if measure is None:
        return None

    def run(ws: Workspace) -> list[dict]:
        params = inspect.signature(measure).parameters
        kwargs = {}
        if quick and "quick" in params:
            kwargs["quick"] = True
        elif quick and "sizes" in params:
            kwargs["sizes"] = (0, 50)
        return [normalise_extra(r, label, goal, name) for r in measure(**kwargs)]

    return run


def normalise_extra(raw: dict, label: str, goal: str, name: str) -> dict:
    """Fit a foreign row to the table: keep its ratio, show its other keys as a note."""
    shown = {k: v for k, v in raw.items() if k not in ("figure", "ratio", "goal", "met", "name")}
    figure = (
        raw.get("figure") or f"{label} ({', '.join(f'{k}={v}' for k, v in shown.items() if not isinstance(v, float))})"
    )
    note = raw.get("note") or ", ".join(f"{k}={v}" for k, v in shown.items() if isinstance(v, float))
    goal = raw.get("goal", goal)
    return {"name": name, "figure": figure, "ours_s": raw.get("ours_s"), "baseline_s": raw.get("baseline_s"),
            "ratio": raw.get("ratio"), "goal": goal, "met": raw.get("met", _meets(raw.get("ratio"), goal)),
            "unit": raw.get("unit", "s"), "note": note}  # fmt: skip


def _meets(ratio, goal: str) -> bool | None:
    """Judge a foreign row by a goal written as '≤ N …' or '≥ N …'; None if either is missing."""
    parts = goal.split()
    if not isinstance(ratio, (int, float)) or len(parts) < 2 or parts[0] not in ("≤", "≥"):
        return None
    try:
        bound = float(parts[1])
    except ValueError:
        return None
    return ratio <= bound if parts[0] == "≤" else ratio >= bound


def _fmt_time(seconds, unit: str) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.1f} ms" if unit == "ms" else f"{seconds:.2f} s"


def render(rows: list[dict]) -> str:
    """The markdown tables: figures, then setup timings that are not goals."""
    lines = [
        "| Figure | tui-ca | Baseline | Ratio | Goal | Met | Note |",
        "| --- | ---: | ---: | ---: | --- | :-: | --- |",
    ]
    for r in rows:
        if r.get("setup"):
            continue
        ratio = r.get("ratio")
        ratio_text = f"{ratio:.2f}" if isinstance(ratio, (int, float)) else str(ratio)
        met = {True: "yes", False: "**NO**", None: ""}.get(r.get("met"), str(r.get("met")))
        unit = r.get("unit", "s")
        lines.append(f"| {r['figure']} | {_fmt_time(r.get('ours_s'), unit)} | {_fmt_time(r.get('baseline_s'), unit)} "
                     f"| {ratio_text} | {r.get('goal', '')} | {met} | {r.get('note', '')} |")  # fmt: skip
    setup = [r for r in rows if r.get("setup")]
    if setup:
        lines += ["", "| Setup (not a goal) | Time | Note |", "| --- | ---: | --- |"]
        lines += [f"| {r['figure']} | {r['ours_s']:.1f} s | {r.get('note', '')} |" for r in setup]
    return "\n".join(lines)


def _load_line() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return ""
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    choices = [*FIGURES, *EXTRA_MODULES]
    parser = argparse.ArgumentParser(description="tui-ca benchmark: prints the figures table")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the machinery, not the speed)")
    parser.add_argument("--only", action="append", choices=choices, metavar="NAME",
                        help=f"run only this figure (repeatable): {', '.join(choices)}")  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the homes here instead of a temporary folder")
    args = parser.parse_args(argv)
    wanted = args.only or choices
    runners: dict[str, Callable[[Workspace], list[dict]]] = {n: f for n, f in FIGURES.items() if n in wanted}
    for name in EXTRA_MODULES:
        if name in wanted and (extra := _extra(name, args.quick)) is not None:
            runners[name] = extra
        elif args.only and name in args.only:
            print(f"bench: {EXTRA_MODULES[name][0]} is not present", file=sys.stderr)

    rows: list[dict] = []
    failed = False
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tui-ca-bench-", dir=args.workdir) as tmp:
        ws = Workspace(Path(tmp), QUICK if args.quick else FULL)
        for name, runner in runners.items():
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                done = runner(ws)
                rows += done
                # Progress for long runs: the rows so far, in case the run is cut short.
                print(render(done), file=sys.stderr, flush=True)
            except Exception as exc:  # one broken figure must not hide the others
                failed = True
                traceback.print_exc()
                rows.append({"name": name, "figure": f"{name} FAILED: {exc}", "ratio": "error", "met": False})
    print(f"## tui-ca figures{' (--quick: sizes too small to mean anything)' if args.quick else ''}\n")
    print(render(rows))
    print(f"\nPython {platform.python_version()}, {_load_line()}; total {time.perf_counter() - started:.0f} s. "
          "The machine is shared: compare ratios, not absolute times.")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

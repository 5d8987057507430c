#!/usr/bin/env python3
"""kiln's benchmark suite: every scenario in scenarios/, kiln beside its
peers, then a markdown table, raw results (JSON) and a chart (PNG) under
benchmarks/results/.

Run it through benchmarks/run, which first sets up what it needs (kiln's
build, bubblewrap, the peers' virtual environment, the MCP SDK client):

    benchmarks/run                 the full suite (under 10 minutes on 2 cores)
    benchmarks/run --quick         every scenario, briefly
    benchmarks/run --only figure   some scenarios (comma-separated names)
    benchmarks/run --out reference results/reference.{md,json,png}

Exits non-zero when a scenario fails, in particular when a system's output
is not what the cell should have produced (a sanity check).
"""
import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench import machine, report  # noqa: E402
from bench.context import Context, Progress, SanityError  # noqa: E402
from scenarios import SCENARIOS, name  # noqa: E402


def environments(tmp):
    """The peers' environments: the caller's without PYTHON* variables,
    OpenBLAS on one thread as kiln has it, a matplotlib cache of the suite's
    own, Agg for scripts, and ipykernel's state in the run's temporary
    directory."""
    # Python's own defaults for every peer (a PYTHONUNBUFFERED in the
    # caller's environment would make python -c write line by line).
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        base[var] = "1"
    base["MPLCONFIGDIR"] = os.path.join(HERE, ".cache", "matplotlib")
    os.makedirs(base["MPLCONFIGDIR"], exist_ok=True)
    base.pop("MPLBACKEND", None)
    peer = dict(base, MPLBACKEND="Agg")
    jupyter = {"IPYTHONDIR": os.path.join(tmp, "ipython"), "JUPYTER_RUNTIME_DIR": os.path.join(tmp, "jupyter"),
               "JUPYTER_DATA_DIR": os.path.join(tmp, "jupyter-data"), "JUPYTER_PLATFORM_DIRS": "1"}
    os.environ.update(jupyter)  # the connection files are written by this process
    return peer, dict(base, **jupyter)


MAX_SAMPLES = 10_000


def to_json(run):
    """The run as JSON, each series of samples on one line (6 significant
    digits); a series longer than MAX_SAMPLES as its quantiles in 0.1%
    steps, which is what the summaries are drawn from anyway."""
    series, results = [], []
    for r in run["results"]:
        v = sorted(r["values"]) if len(r["values"]) > MAX_SAMPLES else r["values"]
        if len(v) > MAX_SAMPLES:
            v = [v[min(len(v) - 1, round(q * (len(v) - 1) / 1000))] for q in range(1001)]
        series.append([float(f"{x:.6g}") for x in v])
        results.append(dict(r, values=f"@@{len(series) - 1}@@",
                            values_are="samples" if len(r["values"]) <= MAX_SAMPLES else "quantiles, 0.1% steps"))
    text = json.dumps(dict(run, results=results), indent=1, ensure_ascii=False)
    for i, v in enumerate(series):
        text = text.replace(f'"@@{i}@@"', json.dumps(v), 1)
    return text + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every scenario, briefly (a smoke run: CI)")
    ap.add_argument("--only", help="comma-separated scenario names (see --list)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--out", help="results/OUT.{json,md,png} (default: latest, or quick with --quick)")
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"), help="the kiln binary")
    ap.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python3"),
                    help="the interpreter of the per-call peers (default: kiln's sandbox venv)")
    a = ap.parse_args()

    chosen = SCENARIOS
    if a.list:
        for mod in SCENARIOS:
            print(f"{name(mod):14} {mod.TITLE}")
        return 0
    if a.only:
        wanted = a.only.split(",")
        unknown = set(wanted) - {name(m) for m in SCENARIOS}
        if unknown:
            ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}; see --list")
        chosen = [m for m in SCENARIOS if name(m) in wanted]

    mode = "quick" if a.quick else "full"
    out = os.path.join(HERE, "results", a.out or ("quick" if a.quick else "latest"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="kiln-bench-")
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    peer_env, ipy_env = environments(tmp)

    progress = Progress()
    info = machine.describe(ROOT, a.kiln, a.python, HERE)
    progress.note(f"kiln benchmarks, {mode} run: {len(chosen)} scenarios on {info['cores']} cores "
                  f"({info['cpu']}), kernel {info['kernel']}, load average {info['loadavg_start']}")
    progress.note("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))

    ctx = Context(quick=a.quick, kiln=a.kiln, python=a.python, paths={"root": ROOT, "here": HERE},
                  progress=progress, log_dir=logs, peer_env=peer_env, ipykernel_env=ipy_env)
    failures, ran = [], []
    t0 = time.monotonic()
    for i, mod in enumerate(chosen, 1):
        ctx.scenario = name(mod)
        load = machine.loadavg()
        progress.begin(i, len(chosen), mod.TITLE)
        started = time.monotonic()
        status = "done"
        try:
            try:
                mod.run(ctx)
            finally:
                ctx.close_all()
        except SanityError as e:
            status = "SANITY CHECK FAILED"
            failures.append({"scenario": ctx.scenario, "error": str(e)[:2000], "kind": "sanity"})
        except Exception as e:
            status = "FAILED"
            failures.append({"scenario": ctx.scenario, "error": f"{type(e).__name__}: {str(e)[:2000]}",
                             "kind": "error", "traceback": traceback.format_exc()})
        progress.end(status)
        if status != "done":
            progress.note(failures[-1]["error"])
        ran.append({"name": ctx.scenario, "title": mod.TITLE, "seconds": round(time.monotonic() - started, 1),
                    "status": status, "loadavg_before": load})

    info["loadavg_end"] = machine.loadavg()
    run = {
        "mode": mode,
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "duration_s": time.monotonic() - t0,
        "machine": info,
        "scenarios": ran,
        "results": ctx.results,
        "targets": ctx.targets,
        "failures": failures,
    }
    text = report.markdown(run)
    with open(out + ".json", "w") as f:
        f.write(to_json(run))
    with open(out + ".md", "w") as f:
        f.write(text)
    try:
        report.chart(run, out + ".png")
    except Exception as e:
        failures.append({"scenario": "chart", "error": f"{type(e).__name__}: {e}", "kind": "error"})
        traceback.print_exc()
    print(text)
    rel = os.path.relpath(out, os.getcwd())
    progress.note(f"results: {rel}.md, {rel}.json, {rel}.png ({run['duration_s']:.0f} s)")
    if failures:
        progress.note(f"{len(failures)} scenario(s) failed; servers' and kernels' logs kept in {logs}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

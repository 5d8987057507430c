"""The markdown report and the chart."""
import textwrap

from .stats import fmt, scale

COLORS = {"kiln": "#1f5fa8", "kiln (MCP SDK)": "#6fa3dc", "kiln (raw HTTP)": "#2b9e96", "ipykernel": "#e08a1e",
          "python -c": "#4a9c4a", "bwrap + python -c": "#b0413e"}


def _color(system):
    for key in sorted(COLORS, key=len, reverse=True):
        if system.startswith(key):
            return COLORS[key]
    return "#777777"


def _ratio(row, base):
    if base is None or row is base:
        return "ref" if row is base else ""
    a, b = row["summary"].get("median"), base["summary"].get("median")
    if not a or not b:
        return ""
    r = a / b
    if r >= 100:
        return f"×{r:,.0f}"
    if r >= 10:
        return f"×{r:.0f}"
    return f"×{r:.2f}"


def metrics(results):
    """[(scenario, metric, rows)] in the order the metrics were first recorded."""
    groups = {}
    for r in results:
        groups.setdefault((r["scenario"], r["metric"]), []).append(r)
    return [(s, m, rows) for (s, m), rows in groups.items()]


def table(results, titles):
    lines = ["| scenario · metric | system | median | p99 | min – max | n | ÷ kiln | note |",
             "|---|---|--:|--:|--:|--:|--:|---|"]
    for scenario, metric, rows in metrics(results):
        base = next((r for r in rows if r["baseline"]), None)
        for i, r in enumerate(rows):
            s, unit = r["summary"], r["unit"]
            head = f"**{titles.get(scenario, scenario)}** · {metric}" if i == 0 else ""
            if r["better"] == "higher" and i == 0:
                head += " (higher is better; tail = slowest 1%)"
            spread = f"{fmt(s['min'], unit)} – {fmt(s['max'], unit)}" if s["n"] > 1 else ""
            p99 = fmt(s["p99"], unit) if s["n"] > 1 else "—"
            lines.append(f"| {head} | {r['system']} | {fmt(s['median'], unit)} | {p99} | {spread} | {s['n']} "
                         f"| {_ratio(r, base)} | {r['note']} |")
    return "\n".join(lines)


def targets_table(targets):
    lines = ["| target | goal | measured | | note |", "|---|---|--:|---|---|"]
    for t in targets:
        met = {True: "met", False: "**not met**", None: "—"}[t["met"]]
        lines.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {met} | {t['note']} |")
    return "\n".join(lines)


def machine_lines(m):
    lines = [f"- CPU: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['memory']} memory",
             f"- OS: {m['os']}, kernel {m['kernel']}",
             f"- load average (1, 5, 15 min): {m['loadavg_start']} at the start, "
             f"{m.get('loadavg_end', '?')} at the end (the suite's own load included)"]
    lines += [f"- {k}: {v if v else 'not found'}" for k, v in m["versions"].items()]
    return lines


def markdown(run):
    m = run["machine"]
    out = [f"# kiln benchmarks — {run['mode']} run, {run['date']}", "",
           f"{len(run['scenarios'])} scenarios in {run['duration_s']:.0f} s. Medians, the 99th percentile "
           "(for rates: the slowest 1%), min–max and the number of samples; `÷ kiln` is the median divided by "
           "kiln's (the `ref` row).", ""]
    if run["failures"]:
        out += ["## Failures", ""] + [f"- **{f['scenario']}**: {f['error']}" for f in run["failures"]] + [""]
    titles = {s["name"]: f"{i + 1}. {s['title']}" for i, s in enumerate(run["scenarios"])}
    out += ["## Results", "", table(run["results"], titles), "", "## Targets", "",
            targets_table(run["targets"]), "", "## Machine", ""] + machine_lines(m) + [""]
    return "\n".join(out)


def chart(run, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = metrics(run["results"])
    if not groups:
        return
    titles = {s["name"]: f"{i + 1}. {s['title']}" for i, s in enumerate(run["scenarios"])}
    cols = 3
    rows = (len(groups) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, (scenario, metric, rs) in zip(axes.flat, groups):
        unit = rs[0]["unit"]
        med = [r["summary"]["median"] for r in rs]
        tail = [r["summary"]["p99"] for r in rs]
        factor, label = scale(unit, med + tail)
        y = list(range(len(rs)))[::-1]
        ax.barh(y, [v * factor for v in med], color=[_color(r["system"]) for r in rs], height=0.65)
        for yi, r, v, t in zip(y, rs, med, tail):
            end = v
            if r["summary"]["n"] > 1:
                ax.plot([v * factor, t * factor], [yi, yi], color="black", lw=1)
                ax.plot([t * factor], [yi], marker="|", color="black", ms=8)
                end = max(v, t)
            ax.annotate("  " + fmt(v, unit), (end * factor, yi), va="center", fontsize=7)
        ax.set_yticks(y, ["\n".join(textwrap.wrap(r["system"], 26)) for r in rs], fontsize=7.5)
        lo = min(v for v in med if v > 0) if any(v > 0 for v in med) else 1
        if max(med + tail) / lo > 30:
            ax.set_xscale("log")
        ax.set_xlabel(label + ("  (log scale)" if ax.get_xscale() == "log" else ""), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(x=0.3)
        title = [titles.get(scenario, scenario)] + textwrap.wrap(metric.replace("`", ""), 62)
        ax.set_title("\n".join(title), fontsize=8.5, loc="left")
    m = run["machine"]
    fig.suptitle(f"kiln benchmarks ({run['mode']}, {run['date']}): bars are medians, whiskers reach the p99 "
                 f"(for rates the slowest 1%) — {m['cores']} cores, {m['cpu']}, kernel {m['kernel']}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=90)
    plt.close(fig)

"""Summaries and the formatting of values with their units."""
import math
import statistics


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list (q in 0..1)."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[min(k, len(sorted_values) - 1)]


def summarize(values, better="lower"):
    """median, the p99 tail, min, max, n.

    For a figure where lower is better (a time, a size) the tail is the
    99th percentile; for one where higher is better (a rate) it is the 1st
    percentile: the slow 1% either way."""
    v = sorted(values)
    if not v:
        return {"n": 0}
    tail = percentile(v, 0.99) if better == "lower" else percentile(v, 0.01)
    return {
        "n": len(v),
        "median": statistics.median(v),
        "p99": tail,
        "min": v[0],
        "max": v[-1],
        "mean": statistics.fmean(v),
    }


def fmt(value, unit):
    """A value in its unit, scaled for reading: s -> µs/ms/s, B -> KiB/MiB."""
    if value is None:
        return "—"
    if value < 0:
        return "−" + fmt(-value, unit)
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1e3:.3g} ms" if value < 0.01 else f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    if unit == "B":
        if value >= 1 << 20:
            return f"{value / (1 << 20):.2f} MiB"
        if value >= 1 << 10:
            return f"{value / (1 << 10):.1f} KiB"
        return f"{value:.0f} B"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:.4g} {unit}".strip()


def scale(unit, values):
    """(factor, label) for plotting VALUES of UNIT on one axis."""
    top = max(values) if values else 0
    if unit == "s":
        if top < 2e-3:
            return 1e6, "µs"
        if top < 2:
            return 1e3, "ms"
        return 1, "s"
    if unit == "B":
        if top >= 1 << 20:
            return 1 / (1 << 20), "MiB"
        return 1 / (1 << 10), "KiB"
    if unit == "/s":
        return 1, "per second"
    return 1, unit

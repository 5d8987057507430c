"""A figure to PNG: plt.plot of 5 lines with a legend (640×480 pixels).

Three cells, each labelled in the table by what it measures:

* "shown": the cell draws the figure and leaves it open.  ipykernel's
  inline backend sends it as display_data (PNG, base64, cropped with
  bbox_inches="tight"); kiln captures it at the end of the cell, encodes it
  with its own encoder and returns it as image content -- when the kiln
  under test does (a kiln without figure capture returns no image, and
  these rows are left out).  Time: the round trip; bytes: the PNG received.
* "savefig": the cell draws the figure, encodes it itself with
  fig.savefig(io.BytesIO(), format="png", bbox_inches="tight") -- the call
  the inline backend makes -- closes it and returns the byte count.
* "encode": inside one kiln cell, timed with time.perf_counter around
  each call: fig.savefig(png) with matplotlib's defaults (it draws the
  figure again, then encodes); plt.show(), which in kiln captures at once
  (draws again, encodes, keeps the artifact), each on a fresh figure; and,
  on a third one already drawn, the two encoders alone on the canvas's RGBA buffer: kiln's
  (_kiln_png, where the kiln under test has it) and PIL's.  The encoder
  target is read both ways: the encoder alone, and the whole capture,
  against savefig.
"""
import ast

from bench.context import Job
from bench.drivers import IPY, RAW, SDK

TITLE = "Figure → PNG"
ORDER = 70
SHOWN = "5 lines + legend, shown: PNG in the reply, round trip"
SAVEFIG = "5 lines + legend → fig.savefig(png) in the cell, round trip"
BYTES = "PNG bytes"
ENCODE = "figure → PNG, timed inside one kiln cell"
SIGNATURE = b"\x89PNG\r\n\x1a\n"

FIGURE = ("import io, time\n"
          "import numpy as np\n"
          "import matplotlib.pyplot as plt\n"
          "def figure():\n"
          "    x = np.linspace(0, 10, 500)\n"
          "    fig, ax = plt.subplots()\n"
          "    for k in range(5):\n"
          "        ax.plot(x, np.sin(x + k) * (k + 1), label=f'line {k}')\n"
          "    ax.legend()\n"
          "    return fig\n")
SHOWN_CELL = FIGURE + "fig = figure()\nNone"
SAVEFIG_CELL = FIGURE + ("fig = figure()\n"
                         "buf = io.BytesIO()\n"
                         "fig.savefig(buf, format='png', bbox_inches='tight')\n"
                         "plt.close(fig)\n"
                         "png = buf.getvalue()\n"
                         f"(len(png), png[:8] == {SIGNATURE!r})")
ENCODE_CELL = FIGURE + ("fig = figure()\n"
                        "buf = io.BytesIO()\n"
                        "t = time.perf_counter()\n"
                        "fig.savefig(buf, format='png')\n"
                        "t_savefig = time.perf_counter() - t\n"
                        "plt.close(fig)\n"
                        "png = buf.getvalue()\n"
                        "fig = figure()\n"
                        "t = time.perf_counter()\n"
                        "plt.show()\n"
                        "t_show = time.perf_counter() - t\n"
                        "fig = figure()\n"
                        "fig.canvas.draw()\n"
                        "rgba = fig.canvas.buffer_rgba()\n"
                        "h, w = rgba.shape[:2]\n"
                        "try:\n"
                        "    import _kiln_png\n"
                        "    t = time.perf_counter()\n"
                        "    n_kiln = len(_kiln_png.encode(memoryview(rgba).cast('B'), w, h)[0])\n"
                        "    t_kiln = time.perf_counter() - t\n"
                        "except Exception:\n"
                        "    t_kiln = n_kiln = None\n"
                        "from PIL import Image\n"
                        "t = time.perf_counter()\n"
                        "pil = io.BytesIO()\n"
                        "Image.frombuffer('RGBA', (w, h), bytes(rgba), 'raw', 'RGBA', 0, 1).save(pil, 'PNG')\n"
                        "t_pil = time.perf_counter() - t\n"
                        "plt.close(fig)\n"
                        f"(len(png), png[:8] == {SIGNATURE!r}, t_savefig, t_show, t_kiln, n_kiln, t_pil, "
                        "len(pil.getvalue()))")


def run(ctx):
    runs = ctx.n(20, 3)
    raw, sdk = ctx.kilns()
    ipy = ctx.ipykernel()
    sids = {}
    for k in (raw, sdk):
        _, r = k.run("1+1")
        sids[k.label] = r["session_id"]
    _, probe = raw.run(SHOWN_CELL, sids[RAW])
    capture = bool(probe["images"])
    sizes = {"kiln capture": [], "savefig, tight": [], "savefig": [], "ipykernel": [], "encoder": []}
    encode = {"savefig": [], "show": [], "encoder": [], "pil": []}

    def one_png(label, r):
        ctx.check(r["status"] == "ok", f"{label}: {r}")
        imgs = r["images"]
        ctx.check(len(imgs) == 1 and imgs[0]["png"] and imgs[0]["bytes"] > 10_000, f"{label}: images {imgs}")
        return imgs[0]["bytes"]

    def kiln_shown(k):
        def one():
            dt, r = k.run(SHOWN_CELL, sids[k.label])
            n = one_png(k.label, r)
            if k is raw:
                sizes["kiln capture"].append(n)
            return dt
        return one

    def kiln_savefig(k):
        def one():
            dt, r = k.run(SAVEFIG_CELL, sids[k.label])
            ctx.check(r["status"] == "ok" and not r["images"], f"{k.label}: {r}")
            n, is_png = ast.literal_eval(r["result"])
            ctx.check(is_png and n > 10_000, f"{k.label}: {r['result']}")
            if k is raw:
                sizes["savefig, tight"].append(n)
            return dt
        return one

    def ipy_shown():
        dt, r = ipy.timed(SHOWN_CELL)
        ctx.check(r["status"] == "ok" and len(r["images"]) == 1 and r["images"][0].startswith(SIGNATURE)
                  and len(r["images"][0]) > 10_000, f"ipykernel: status {r['status']}, {len(r['images'])} images")
        sizes["ipykernel"].append(len(r["images"][0]))
        return dt

    def ipy_savefig():
        dt, r = ipy.timed(SAVEFIG_CELL)
        ctx.check(r["status"] == "ok" and not r["images"], f"ipykernel: {r}")
        n, is_png = ast.literal_eval(r["result"])
        ctx.check(is_png and n > 10_000, f"ipykernel: {r['result']}")
        return dt

    def kiln_encode():
        _, r = raw.run(ENCODE_CELL, sids[RAW])
        ctx.check(r["status"] == "ok", f"kiln: {r}")
        n, is_png, t_savefig, t_show, t_kiln, n_kiln, t_pil, n_pil = ast.literal_eval(r["result"])
        ctx.check(is_png and n > 10_000 and n_pil > 10_000, f"kiln: {r['result']}")
        sizes["savefig"].append(n)
        encode["savefig"].append(t_savefig)
        encode["pil"].append(t_pil)
        if capture:
            one_png(RAW, r)
            encode["show"].append(t_show)
        if t_kiln is not None:
            ctx.check(n_kiln > 10_000, f"kiln: {r['result']}")
            encode["encoder"].append(t_kiln)
            sizes["encoder"].append(n_kiln)
        return t_savefig

    jobs = []
    if capture:
        jobs += [Job("shown " + RAW, runs, kiln_shown(raw)), Job("shown " + SDK, runs, kiln_shown(sdk))]
    jobs += [Job("shown " + IPY, runs, ipy_shown), Job("savefig " + RAW, runs, kiln_savefig(raw)),
             Job("savefig " + SDK, runs, kiln_savefig(sdk)), Job("savefig " + IPY, runs, ipy_savefig),
             Job("encode", runs, kiln_encode)]
    s = ctx.interleave(jobs)

    kiln_note = "kiln's figure capture: image content in the reply"
    if capture:
        ctx.record(SHOWN, RAW, s["shown " + RAW], note=kiln_note)
        ctx.record(SHOWN, SDK, s["shown " + SDK], note=kiln_note)
    ctx.record(SHOWN, IPY, s["shown " + IPY], note="inline backend: display_data image/png"
               + ("" if capture else "; this kiln returns no images"))
    savefig_note = "the cell encodes, returns the byte count"
    ctx.record(SAVEFIG, RAW, s["savefig " + RAW], note=savefig_note)
    ctx.record(SAVEFIG, SDK, s["savefig " + SDK], note=savefig_note)
    ctx.record(SAVEFIG, IPY, s["savefig " + IPY], note=savefig_note)

    last = slice(-runs, None)  # the measured runs only, not the warm-ups
    if capture:
        ctx.record(BYTES, "kiln capture", sizes["kiln capture"][last], unit="B", note="640×480, kiln's encoder")
    ctx.record(BYTES, "fig.savefig(png)", sizes["savefig"][last], unit="B", baseline=not capture,
               note="640×480, matplotlib's defaults")
    ctx.record(BYTES, "fig.savefig(png, bbox_inches='tight')", sizes["savefig, tight"][last], unit="B",
               note="cropped, as the inline backend does")
    ctx.record(BYTES, "ipykernel inline", sizes["ipykernel"][last], unit="B", note="display_data, decoded")

    def median(v):
        return sorted(v)[len(v) // 2]

    goal, name = "≥ 3×, ≤ savefig's bytes", "figure → PNG encode ≥ 3× faster than savefig, bytes no larger"
    save = ctx.record(ENCODE, "fig.savefig(png)", encode["savefig"][last], baseline=not capture,
                      note="matplotlib: redraw + encode")
    if capture:
        show = ctx.record(ENCODE, "kiln capture: plt.show()", encode["show"][last], baseline=True,
                          note="kiln: redraw + encode + keep the artifact")
    if encode["encoder"]:
        enc = ctx.record(ENCODE, "kiln's encoder alone", encode["encoder"][last],
                         note="_kiln_png on the drawn canvas's RGBA buffer")
    ctx.record(ENCODE, "PIL's encoder alone", encode["pil"][last], note="Image.save(PNG) of the same buffer")
    if capture and encode["encoder"]:
        sb = median(sizes["savefig"][last])
        kb = median(sizes["encoder"][last])
        speedup = save["median"] / enc["median"]
        ctx.target(f"{name} — the encoder (drawn figure → PNG) against fig.savefig(png)", goal,
                   f"{speedup:.1f}×, {kb:,} B vs {sb:,} B", speedup >= 3 and kb <= sb,
                   note=f"encoder {enc['median'] * 1e3:.1f} ms, savefig {save['median'] * 1e3:.1f} ms (medians)")
        speedup = save["median"] / show["median"]
        kb = median(sizes["kiln capture"][last])
        ctx.target(f"{name} — kiln's whole capture, redraw included, against fig.savefig(png)", goal,
                   f"{speedup:.2f}×, {kb:,} B vs {sb:,} B", speedup >= 3 and kb <= sb,
                   note=f"capture {show['median'] * 1e3:.1f} ms, savefig {save['median'] * 1e3:.1f} ms (medians): "
                        "both draw the figure again")
    else:
        ctx.target(name, goal, "not yet measured", None,
                   note=f"this kiln returns no images; savefig: {save['median'] * 1e3:.1f} ms")

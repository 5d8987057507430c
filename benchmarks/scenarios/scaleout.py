"""Three kiln nodes behind nginx against one node behind it, nginx
configured by docker/nginx/render as the scale-out test and the
Kubernetes router are.  The same clients, each with its own connection,
MCP session and kiln session, run trivial cells with one call in flight
each: cells per second through the router, counted in fixed windows.

On a machine with few cores the three nodes share them with nginx and
the client, so the 3-against-1 ratio is the cost of routing and of the
extra processes (a scaling-overhead figure), not the speed-up more cores
would give.  Beside it, one client's round trip through nginx and
straight to the node: the latency nginx adds."""
import secrets

from bench.context import Job
from scenarios.throughput import windows

TITLE = "Scale-out: kiln nodes behind nginx"
ORDER = 86
CODE = "x = x + 1"
THREE, ONE, DIRECT = "nginx → 3 kiln nodes", "nginx → 1 kiln node", "1 kiln node, direct"
NODES = 3


def run(ctx):
    seconds, rounds, width = ctx.n(4.0, 1.5), ctx.n(5, 1), ctx.n(1.0, 0.5)
    clients, calls = ctx.n(30, 10), ctx.n(100, 20)
    rate = f"trivial cells/s, {clients} clients, {clients} in flight"
    latency_metric = "round trip, one client, one call in flight"
    token = secrets.token_hex(24)
    nodes = [(f"kiln-{i}", ctx.kiln_http("--node-name", f"kiln-{i}", token=token)) for i in range(NODES)]
    solo = ctx.kiln_http("--node-name", "solo", token=token)
    routes = {THREE: ctx.router(nodes, token), ONE: ctx.router([("solo", solo)], token)}

    counts, pairs, jobs = {}, {}, []
    for label, route in routes.items():
        ctx.progress.update(f"{label}: connecting {clients} clients")
        pairs[label] = []
        for _ in range(clients):
            client = route.connect()
            _, r = route.run("x = 0", client=client)
            pairs[label].append((client, r["session_id"]))
            counts[r["session_id"]] = 0
        ctx.check(len({sid for _, sid in pairs[label]}) == clients, f"{label}: clients share kiln sessions")

        def one(label=label, route=route, length=seconds, keep=True):
            res = route.pipeline(pairs[label], CODE, length)
            ctx.check(not res["errors"], f"{label}: {res['errors'][:1]}")
            for sid, c in res["ok"].items():
                counts[sid] += c
            return windows(res["done"], length, width) if keep else []
        one(length=0.5, keep=False)
        jobs.append(Job(label, rounds, one, warmup=0))
    # New sessions spread by least connections: every node holds some.
    on = {c.session_id.split(".")[0] for c, _ in pairs[THREE]}
    ctx.check(on == {name for name, _ in nodes}, f"{THREE}: sessions only on {sorted(on)}")

    # One client, one call at a time: through nginx and straight to the node.
    singles = {ONE: routes[ONE], DIRECT: solo}
    sids = {label: k.run("y = 0")[1]["session_id"] for label, k in singles.items()}
    for label, k in singles.items():
        def many(label=label, k=k):
            times, _, bad = k.run_many("y = 1", sids[label], calls)
            ctx.check(not bad, f"{label}: {bad[:1]}")
            return times
        jobs.append(Job("rt " + label, rounds, many))

    s = ctx.interleave(jobs)

    # Every cell ran, once: each session's counter is its number of replies.
    for label, route in routes.items():
        for client, sid in pairs[label]:
            value = route.run("x", sid, client=client)[1]["result"]
            ctx.check(value == str(counts[sid]), f"{label}, session {sid}: x = {value}, expected {counts[sid]}")

    note = f"{rounds} × {seconds:g} s, {width:g} s windows"
    ctx.record(rate, THREE, s[THREE], unit="/s", better="higher", baseline=True,
               note=f"{note}; the nodes share this machine's cores")
    ctx.record(rate, ONE, s[ONE], unit="/s", better="higher", note=note)
    direct = ctx.record(latency_metric, DIRECT, s["rt " + DIRECT], baseline=True,
                        note=f"{rounds} × {calls} calls")
    routed = ctx.record(latency_metric, ONE, s["rt " + ONE], note=f"{rounds} × {calls} calls")
    added = routed["median"] - direct["median"]
    ctx.record("latency nginx adds (difference of the medians)", ONE, [added], baseline=True,
               note="the round trip through nginx less the one straight to the node")

"""Drives `$KILN_BIN serve` through the official MCP Python SDK's stdio client.

    KILN_BIN=/abs/path/to/kiln .venv-current/bin/python sdk_client.py SCENARIO

Runs one scenario against a kiln started with a fresh KILN_HOME and prints
one JSON object with what the client observed; the assertions live in
tests/integration/python-sdk.test.mjs.  It runs unchanged under every SDK
version that setup.sh installs (1.9.4 and the newest 2.x): where their APIs
differ it asks the installed version.

Besides what the SDK hands back (its models, dumped with model_dump), every
JSON-RPC message is recorded as it crossed the pipe, with the time it did:
an older SDK drops or refuses fields it does not know, and what matters for
those versions is what kiln sent, not what the SDK kept of it.

Scenarios: initialize, tools, run, files_and_figures, progress, sys_print_c.
Each call's outcome is {"id", "result", "raw"} or, when the SDK raised,
{"id", "error": exception type, "message", "raw"}; "raw" is the result (or
error) object kiln sent for that request.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version as distribution_version

import anyio
import mcp.types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

SDK_VERSION = distribution_version("mcp")
SDK_MAJOR = int(SDK_VERSION.split(".")[0])

# Generous: kiln answers in milliseconds, but a loaded CI machine or a
# sanitizer build is slower by orders of magnitude.
CALL_TIMEOUT_S = 120
SCENARIO_TIMEOUT_S = 240


def read_timeout(seconds):
    """The per-request timeout in the form the installed SDK takes it."""
    # 1.x takes a timedelta; 2.x takes seconds as a float.
    return timedelta(seconds=seconds) if SDK_MAJOR < 2 else float(seconds)


def dump(model):
    """A pydantic model as the wire-shaped dict the SDK would send for it."""
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def plain_message(message):
    """A JSON-RPC message as a dict.  1.x wraps it in a RootModel, 2.x does not."""
    message = getattr(message, "root", message)
    return message.model_dump(by_alias=True, mode="json", exclude_unset=True)


def error_entry(exc):
    return {"error": type(exc).__name__, "message": str(exc)[:4000]}


class Wire:
    """Every JSON-RPC message between the SDK and kiln, each with the monotonic time it passed."""

    def __init__(self):
        self.received = []  # (time, message dict), kiln to client
        self.sent = []  # (time, message dict), client to kiln

    def last_request(self, method):
        """The newest request the client sent with METHOD, or None."""
        for _, message in reversed(self.sent):
            if message.get("method") == method and "id" in message:
                return message
        return None

    def reply_to(self, request_id):
        """(time, message) of kiln's response to REQUEST_ID, or (None, None)."""
        for when, message in self.received:
            if message.get("id") == request_id and "method" not in message:
                return when, message
        return None, None

    def notifications(self, method):
        return [(when, m) for when, m in self.received if m.get("method") == method]


@asynccontextmanager
async def recorded(streams, wire):
    """Sits between the SDK's session and its stdio transport, recording WIRE.

    Yields a (read, write) pair for the session.  The relays use unbuffered
    streams as the transports themselves do, so a message is timed when the
    transport hands it over and no earlier one is held back.
    """
    transport_read, transport_write = streams
    session_read_in, session_read = anyio.create_memory_object_stream(0)
    session_write, session_write_out = anyio.create_memory_object_stream(0)

    async def inbound():
        async with session_read_in:
            try:
                async for item in transport_read:
                    if not isinstance(item, Exception):
                        wire.received.append((time.monotonic(), plain_message(item.message)))
                    await session_read_in.send(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass

    async def outbound():
        try:
            async with session_write_out:
                async for item in session_write_out:
                    wire.sent.append((time.monotonic(), plain_message(item.message)))
                    await transport_write.send(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        # The session closed its end: pass the close on, as if the session
        # held the transport's stream itself.
        await transport_write.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(inbound)
        tg.start_soon(outbound)
        try:
            yield session_read, session_write
        finally:
            tg.cancel_scope.cancel()


class ProgressLog:
    """A progress callback that keeps what it is given and when."""

    def __init__(self):
        self.events = []

    async def __call__(self, progress, total, message):
        self.events.append((time.monotonic(), {"progress": progress, "total": total, "message": message}))


async def call(session, wire, name, arguments, progress=None):
    """Calls tool NAME and returns its outcome (see the module's docstring)."""
    outcome = {}
    try:
        # Both versions take progress_callback here (1.9.4 already did): the
        # SDK puts its own progressToken into the request's _meta and calls
        # back for each notifications/progress that carries it.
        result = await session.call_tool(
            name, arguments, read_timeout_seconds=read_timeout(CALL_TIMEOUT_S), progress_callback=progress
        )
        outcome["result"] = dump(result)
    except Exception as exc:  # what the SDK raised is itself an observation
        outcome.update(error_entry(exc))
    request = wire.last_request("tools/call")
    outcome["id"] = request["id"] if request else None
    reply_time, reply = wire.reply_to(outcome["id"]) if request else (None, None)
    if reply is not None:
        outcome["raw"] = reply.get("result", reply.get("error"))
    outcome["reply_time"] = reply_time
    return outcome


def relative_ms(when, reference):
    return None if reference is None else round((when - reference) * 1000, 1)


def first_text_line(raw_result):
    """The first line of the first text block of a raw tools/call result, or None."""
    for block in (raw_result or {}).get("content", []):
        if block.get("type") == "text":
            return block.get("text", "").split("\n", 1)[0]
    return None


def session_id_in(line):
    """The session id a reply's first line names ("[session ID..."), or None."""
    match = re.match(r"\[session ([A-Za-z0-9_-]+)", line or "")
    return match.group(1) if match else None


def finish(outcome):
    """OUTCOME without its internal fields, ready for the JSON output."""
    return {k: v for k, v in outcome.items() if k != "reply_time"}


# ---------------------------------------------------------------------------
# Scenarios: each takes (session, wire, init) and returns a dict.
# ---------------------------------------------------------------------------


async def scenario_initialize(session, wire, init):
    offered = wire.last_request("initialize")
    _, reply = wire.reply_to(offered["id"])
    return {
        "offered_protocol_version": offered["params"]["protocolVersion"],
        "protocolVersion": init["protocolVersion"],
        "raw_protocolVersion": reply["result"].get("protocolVersion"),
        "serverInfo": init.get("serverInfo"),
    }


async def scenario_tools(session, wire, init):
    listed = await session.list_tools()
    request = wire.last_request("tools/list")
    _, reply = wire.reply_to(request["id"])
    return {
        "tools": [dump(tool) for tool in listed.tools],
        "raw_tools": reply["result"].get("tools"),
    }


async def scenario_run(session, wire, init):
    first = await call(session, wire, "run_python", {"code": "x = 6*7\nx"})
    line = first_text_line(first.get("raw"))
    text_id = session_id_in(line)
    structured_id = ((first.get("raw") or {}).get("structuredContent") or {}).get("session_id")
    out = {"first": finish(first), "first_line": line, "text_session_id": text_id}
    session_id = text_id or structured_id
    if session_id:
        out["second"] = finish(await call(session, wire, "run_python", {"code": "x+1", "session_id": session_id}))
    return out


FILES_AND_FIGURES = (
    "open('out.txt','w').write('hi')\n"
    "import matplotlib.pyplot as plt\n"
    "for i in range(10): plt.figure(); plt.plot([0,i])"
)


async def scenario_files_and_figures(session, wire, init):
    outcome = await call(session, wire, "run_python", {"code": FILES_AND_FIGURES})
    line = first_text_line(outcome.get("raw"))
    return {"call": finish(outcome), "first_line": line, "text_session_id": session_id_in(line)}


TICKS = "import time\nfor i in range(10):\n    print('tick', i, flush=True)\n    time.sleep(0.5)"

C_TICKS = (
    "import os, time, ctypes\n"
    "libc = ctypes.CDLL(None)\n"
    "for i in range(10):\n"
    "    os.write(1, b'c %d\\n' % i)\n"
    "    libc.usleep(500000)"
)


async def streamed(session, wire, code):
    """Runs CODE with a progress callback; times every progress notification against the reply."""
    log = ProgressLog()
    outcome = await call(session, wire, "run_python", {"code": code}, progress=log)
    reply_time = outcome["reply_time"]
    # What the SDK delivered to the callback, timed when it was delivered.
    delivered = [dict(event, t_ms=relative_ms(when, reply_time)) for when, event in log.events]
    # What crossed the pipe, in arrival order: the measure of "before the reply".
    arrived = []
    for when, message in wire.notifications("notifications/progress"):
        params = message.get("params") or {}
        arrived.append(
            {
                "progressToken": params.get("progressToken"),
                "progress": params.get("progress"),
                "total": params.get("total"),
                "message": params.get("message"),
                "t_ms": relative_ms(when, reply_time),
            }
        )
    request = wire.last_request("tools/call")
    return {
        "call": finish(outcome),
        "progress_token": ((request or {}).get("params") or {}).get("_meta", {}).get("progressToken"),
        "progress": delivered,
        "raw_progress": arrived,
    }


async def scenario_progress(session, wire, init):
    return await streamed(session, wire, TICKS)


async def scenario_sys_print_c(session, wire, init):
    return await streamed(session, wire, C_TICKS)


SCENARIOS = {
    "initialize": scenario_initialize,
    "tools": scenario_tools,
    "run": scenario_run,
    "files_and_figures": scenario_files_and_figures,
    "progress": scenario_progress,
    "sys_print_c": scenario_sys_print_c,
}


async def run_scenario(name, kiln_bin, home):
    wire = Wire()
    params = StdioServerParameters(
        command=kiln_bin,
        args=["serve"],
        env={**os.environ, "KILN_HOME": home},
        cwd=home,
    )
    with anyio.fail_after(SCENARIO_TIMEOUT_S):
        async with stdio_client(params) as streams:
            async with recorded(streams, wire) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=read_timeout(CALL_TIMEOUT_S)) as session:
                    init = dump(await session.initialize())
                    return await SCENARIOS[name](session, wire, init)


def innermost(exc):
    """The first leaf of an exception group (anyio wraps task failures), or EXC itself."""
    # Duck-typed: Python 3.10 has exception groups only from a backport.
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]
    return exc


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(SCENARIOS)}}}")
    kiln_bin = os.environ.get("KILN_BIN")
    if not kiln_bin:
        sys.exit("KILN_BIN is not set")
    name = sys.argv[1]
    out = {
        "sdk_version": SDK_VERSION,
        # 2.x separates the newest version it knows (which may be one only
        # reached without the initialize handshake) from the newest it offers
        # in initialize; 1.x has only the first.
        "sdk_latest_protocol_version": getattr(types, "LATEST_HANDSHAKE_VERSION", types.LATEST_PROTOCOL_VERSION),
        "scenario": name,
    }
    home = tempfile.mkdtemp(prefix="kiln-home-")
    status = 0
    try:
        out.update(anyio.run(run_scenario, name, kiln_bin, home))
    except Exception as exc:
        out["failure"] = error_entry(innermost(exc))
        status = 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out))
    sys.exit(status)


if __name__ == "__main__":
    main()

"""Drives kiln through the official MCP Python SDK, over stdio or Streamable HTTP.

    KILN_BIN=/abs/path/to/kiln .venv-current/bin/python sdk_client.py SCENARIO
    [KILN_HTTP_TOKEN=T] .venv-current/bin/python sdk_client.py --url URL SCENARIO

Without --url it starts `$KILN_BIN serve` with a fresh KILN_HOME and speaks
to it through the SDK's stdio client.  With --url it connects the SDK's
Streamable HTTP client to a kiln already serving at URL (`kiln serve --http`),
sending `Authorization: Bearer $KILN_HTTP_TOKEN` when that is set; every run
is then one MCP session of its own on that server.

It runs one scenario and prints one JSON object with what the client
observed; the assertions live in tests/integration/python-sdk.test.mjs.  It
runs unchanged under every SDK version that setup.sh installs (1.9.4 and the
newest 2.x): where their APIs differ it asks the installed version.

Besides what the SDK hands back (its models, dumped with model_dump), every
JSON-RPC message is recorded as it crossed the pipe, with the time it did:
an older SDK drops or refuses fields it does not know, and what matters for
those versions is what kiln sent, not what the SDK kept of it.

Scenarios: initialize, tools, run, files_and_figures, progress, sys_print_c,
and figure, short_progress, timeout, crash, sessions, files (written for
the HTTP runs, but they run over stdio too).
Each call's outcome is {"id", "result", "raw"} or, when the SDK raised,
{"id", "error": exception type, "message", "raw"}; "raw" is the result (or
error) object kiln sent for that request.
"""

import argparse
import base64
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import zlib
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
    """Sits between the SDK's session and its transport, recording WIRE.

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


SHORT_TICKS = "import time\nfor i in range(5):\n    print('tick', i, flush=True)\n    time.sleep(0.25)"


async def scenario_short_progress(session, wire, init):
    return await streamed(session, wire, SHORT_TICKS)


# ---------------------------------------------------------------------------
# What every tool does, one scenario each.  Each names its kiln session from
# the reply's first line, which every protocol version has (2025-03-26 has
# no structuredContent).
# ---------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def png_facts(data):
    """What DATA holds as a PNG: {"valid", "problem", "width", "height", ...}.

    Valid means: the signature, an IHDR first, every chunk's CRC right, an
    IEND last with nothing after it, and IDAT data that inflates to exactly
    the bytes the header's size and format call for.
    """
    facts = {"valid": False, "problem": None, "bytes": len(data)}
    if data[:8] != PNG_SIGNATURE:
        facts["problem"] = f"signature {data[:8]!r}"
        return facts
    pos, chunks, idat = 8, [], b""
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            facts["problem"] = f"chunk {kind!r} at {pos}: truncated"
            return facts
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            facts["problem"] = f"chunk {kind!r} at {pos}: bad CRC"
            return facts
        chunks.append(kind)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            facts.update(width=width, height=height, bit_depth=depth, colour_type=colour)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0] != b"IHDR" or chunks[-1] != b"IEND" or pos != len(data):
        facts["problem"] = f"chunks {[c.decode('latin-1') for c in chunks]}, {len(data) - pos} bytes after the last"
        return facts
    channels = PNG_CHANNELS.get(facts["colour_type"])
    if channels is None:
        facts["problem"] = f"colour type {facts['colour_type']}"
        return facts
    row = (facts["width"] * channels * facts["bit_depth"] + 7) // 8
    try:
        pixels = zlib.decompress(idat)
    except zlib.error as exc:
        facts["problem"] = f"IDAT does not inflate: {exc}"
        return facts
    if len(pixels) != facts["height"] * (1 + row):
        facts["problem"] = f"IDAT inflates to {len(pixels)} bytes, not {facts['height'] * (1 + row)}"
        return facts
    facts["valid"] = True
    return facts


async def read_resource(session, wire, uri):
    """resources/read of URI: {"uri", "result"} or the error, and what kiln sent."""
    outcome = {"uri": uri}
    try:
        outcome["result"] = dump(await session.read_resource(uri))
    except Exception as exc:
        outcome.update(error_entry(exc))
    request = wire.last_request("resources/read")
    _, reply = wire.reply_to(request["id"]) if request else (None, None)
    if reply is not None:
        outcome["raw"] = reply.get("result", reply.get("error"))
    return outcome


async def new_session(session, wire, code="x = 1"):
    """Runs CODE in a new kiln session: (its outcome, the session id its first line names)."""
    outcome = await call(session, wire, "run_python", {"code": code})
    return outcome, session_id_in(first_text_line(outcome.get("raw")))


FIGURE = (
    "import matplotlib.pyplot as plt\n"
    "fig = plt.figure(figsize=(4, 3), dpi=100)\n"
    "plt.plot([0, 1, 2], [0, 1, 4])\n"
    "None"
)


async def scenario_figure(session, wire, init):
    outcome, session_id = await new_session(session, wire, FIGURE)
    raw = outcome.get("raw") or {}
    images = [block for block in raw.get("content", []) if block.get("type") == "image"]
    out = {
        "call": finish(outcome),
        "session_id": session_id,
        "images": [dict(png_facts(base64.b64decode(b["data"])), mimeType=b.get("mimeType")) for b in images],
    }
    # The figure kept as a resource: structuredContent names it where the
    # protocol has one; resources/list lists it in every version.
    artifacts = (raw.get("structuredContent") or {}).get("artifacts") or []
    if not artifacts:
        listed = await session.list_resources()
        artifacts = [
            {"uri": str(r.uri)}
            for r in listed.resources
            if str(r.uri).startswith(f"kiln://sessions/{session_id}/artifacts/")
        ]
    out["artifact_uris"] = [a.get("uri") for a in artifacts]
    if artifacts:
        read = await read_resource(session, wire, artifacts[0]["uri"])
        contents = ((read.get("raw") or {}).get("contents") or [{}])[0]
        blob = base64.b64decode(contents.get("blob", ""))
        out["resource"] = {
            "uri": read["uri"],
            "error": read.get("error"),
            "message": read.get("message"),
            "mimeType": contents.get("mimeType"),
            "png": png_facts(blob),
            "same_as_image": bool(images) and blob == base64.b64decode(images[0]["data"]),
        }
    return out


SPIN = "x = 2\nimport time\nwhile True:\n    time.sleep(0.01)"


async def scenario_timeout(session, wire, init):
    first, session_id = await new_session(session, wire, "x = 1")
    out = {"first": finish(first), "session_id": session_id}
    if session_id:
        start = time.monotonic()
        spun = await call(session, wire, "run_python", {"code": SPIN, "session_id": session_id, "timeout_s": 1})
        out["interrupted"] = dict(finish(spun), seconds=round(time.monotonic() - start, 2))
        out["after"] = finish(await call(session, wire, "run_python", {"code": "x", "session_id": session_id}))
    return out


async def scenario_crash(session, wire, init):
    first, session_id = await new_session(session, wire, "x = 1")
    out = {"first": finish(first), "session_id": session_id}
    if session_id:
        out["crash"] = finish(
            await call(session, wire, "run_python", {"code": "import os\nos._exit(3)", "session_id": session_id})
        )
        out["after"] = finish(
            await call(session, wire, "run_python", {"code": "'x' in globals()", "session_id": session_id})
        )
    return out


async def scenario_sessions(session, wire, init):
    first, session_id = await new_session(session, wire, "x = 1")
    out = {"first": finish(first), "session_id": session_id}
    if session_id:
        out["listed"] = finish(await call(session, wire, "list_sessions", {}))
        out["closed"] = finish(await call(session, wire, "close_session", {"session_id": session_id}))
        out["listed_after"] = finish(await call(session, wire, "list_sessions", {}))
        out["run_after"] = finish(await call(session, wire, "run_python", {"code": "x", "session_id": session_id}))
    return out


UPLOADED_TEXT = "first line\nsecond line, é\n"
UPLOADED_BYTES = bytes(range(256))


async def scenario_files(session, wire, init):
    # upload_file without a session_id starts one.
    text = await call(session, wire, "upload_file", {"path": "notes/a.txt", "content": UPLOADED_TEXT})
    raw = text.get("raw") or {}
    session_id = (raw.get("structuredContent") or {}).get("session_id")
    if session_id is None:
        match = re.search(r"kiln://sessions/([A-Za-z0-9_-]+)/", json.dumps(raw))
        session_id = match.group(1) if match else None
    out = {"upload_text": finish(text), "session_id": session_id}
    if not session_id:
        # 2025-03-26 has no structuredContent: the session is the one list_sessions shows.
        listed = await call(session, wire, "list_sessions", {})
        ids = re.findall(r"^([A-Za-z0-9_-]+)\s", text_of(listed.get("raw")), re.M)
        session_id = out["session_id"] = ids[0] if len(ids) == 1 else None
    if not session_id:
        return out
    blob = base64.b64encode(UPLOADED_BYTES).decode()
    out["upload_binary"] = finish(
        await call(
            session,
            wire,
            "upload_file",
            {"session_id": session_id, "path": "data/bytes.bin", "content": blob, "encoding": "base64"},
        )
    )
    out["listed"] = finish(await call(session, wire, "list_files", {"session_id": session_id}))
    out["read_text"] = finish(await call(session, wire, "read_file", {"session_id": session_id, "path": "notes/a.txt"}))
    binary = await call(session, wire, "read_file", {"session_id": session_id, "path": "data/bytes.bin"})
    out["read_binary"] = finish(binary)
    blobs = [
        block.get("resource", {}).get("blob")
        for block in (binary.get("raw") or {}).get("content", [])
        if block.get("type") == "resource"
    ]
    out["read_binary_same"] = bool(blobs) and blobs[0] is not None and base64.b64decode(blobs[0]) == UPLOADED_BYTES
    # The cell sees what was uploaded, and what it writes read_file sees.
    cell = (
        "text = open('notes/a.txt', encoding='utf-8').read()\n"
        "data = open('data/bytes.bin', 'rb').read()\n"
        "open('out.txt', 'w').write(text.upper())\n"
        "(text == " + repr(UPLOADED_TEXT) + ", data == bytes(range(256)))"
    )
    out["cell"] = finish(await call(session, wire, "run_python", {"code": cell, "session_id": session_id}))
    out["read_written"] = finish(await call(session, wire, "read_file", {"session_id": session_id, "path": "out.txt"}))
    return out


def text_of(raw_result):
    """All text blocks of a raw tools/call result, joined."""
    return "\n".join(b.get("text", "") for b in (raw_result or {}).get("content", []) if b.get("type") == "text")


SCENARIOS = {
    "initialize": scenario_initialize,
    "tools": scenario_tools,
    "run": scenario_run,
    "files_and_figures": scenario_files_and_figures,
    "progress": scenario_progress,
    "sys_print_c": scenario_sys_print_c,
    "short_progress": scenario_short_progress,
    "figure": scenario_figure,
    "timeout": scenario_timeout,
    "crash": scenario_crash,
    "sessions": scenario_sessions,
    "files": scenario_files,
}



@asynccontextmanager
async def stdio_transport(kiln_bin, home):
    """The SDK's stdio client on a `kiln serve` of its own, with KILN_HOME HOME."""
    params = StdioServerParameters(
        command=kiln_bin,
        args=["serve"],
        env={**os.environ, "KILN_HOME": home},
        cwd=home,
    )
    async with stdio_client(params) as streams:
        yield streams


@asynccontextmanager
async def http_transport(url, token):
    """The SDK's Streamable HTTP client on URL, with TOKEN as its bearer token if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if SDK_MAJOR < 2:
        from mcp.client.streamable_http import streamablehttp_client

        # 1.x names it streamablehttp_client, takes the headers itself and
        # yields a third item, a getter of the Mcp-Session-Id.
        async with streamablehttp_client(url, headers=headers, sse_read_timeout=CALL_TIMEOUT_S) as (read, write, _):
            yield read, write
    else:
        from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

        # 2.x takes an HTTP client made by the caller, who sets the headers.
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams


async def run_scenario(name, transport):
    wire = Wire()
    with anyio.fail_after(SCENARIO_TIMEOUT_S):
        async with transport as streams:
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
    parser = argparse.ArgumentParser(description="Runs one scenario through the MCP Python SDK.")
    parser.add_argument(
        "--url", help="a kiln serving Streamable HTTP (bearer token from $KILN_HTTP_TOKEN); default: stdio"
    )
    parser.add_argument("scenario", choices=SCENARIOS)
    args = parser.parse_args()
    name = args.scenario
    kiln_bin = os.environ.get("KILN_BIN")
    if not args.url and not kiln_bin:
        sys.exit("KILN_BIN is not set")
    out = {
        "sdk_version": SDK_VERSION,
        # 2.x separates the newest version it knows (which may be one only
        # reached without the initialize handshake) from the newest it offers
        # in initialize; 1.x has only the first.
        "sdk_latest_protocol_version": getattr(types, "LATEST_HANDSHAKE_VERSION", types.LATEST_PROTOCOL_VERSION),
        "scenario": name,
        "transport": "http" if args.url else "stdio",
    }
    home = tempfile.mkdtemp(prefix="kiln-home-")
    if args.url:
        transport = http_transport(args.url, os.environ.get("KILN_HTTP_TOKEN"))
    else:
        transport = stdio_transport(kiln_bin, home)
    status = 0
    try:
        out.update(anyio.run(run_scenario, name, transport))
    except Exception as exc:
        out["failure"] = error_entry(innermost(exc))
        status = 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out))
    sys.exit(status)


if __name__ == "__main__":
    main()

"""kiln as a Jupyter kernel, driven by the real jupyter_client over the
messaging protocol: each test names the behaviour it pins down."""

import base64
import os
import queue
import re
import signal
import struct
import time

import pytest

from conftest import Kernel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def iopub_until_idle(kc, msg_id, timeout=30):
    """Every iopub message whose parent is MSG_ID, with its arrival time,
    up to and including its idle status."""
    got = []
    end = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, end - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        got.append((time.monotonic(), msg))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return got


def replies_to(kc, msg_ids, timeout, until=None):
    """The shell replies to any of MSG_IDS that come within TIMEOUT
    seconds, or until UNTIL of them came; replies to other requests (the
    kernel_info_requests of wait_for_ready) are passed over."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and (until is None or len(got) < until):
        try:
            msg = kc.get_shell_msg(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if msg["parent_header"].get("msg_id") in msg_ids:
            got.append(msg)
    return got


def types(msgs):
    return [m["msg_type"] for m in msgs]


def png_size(data):
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_kernel_info_reply_names_kiln_python_and_protocol_5_4(kernel):
    reply = kernel.client.kernel_info(reply=True, timeout=10)
    c = reply["content"]
    assert c["status"] == "ok"
    assert c["protocol_version"] == "5.4"
    assert c["implementation"] == "kiln"
    assert c["implementation_version"]
    li = c["language_info"]
    assert li["name"] == "python"
    assert li["version"].startswith("3.12.")
    assert li["mimetype"] == "text/x-python"
    assert li["file_extension"] == ".py"
    assert li["pygments_lexer"] == "ipython3"
    assert li["codemirror_mode"] == {"name": "ipython", "version": 3}
    assert li["nbconvert_exporter"] == "python"
    assert "kiln" in c["banner"]
    assert isinstance(c["help_links"], list)
    assert reply["header"]["version"] == "5.4"


def test_kernel_info_is_answered_on_control_too(kernel):
    kc = kernel.client
    msg = kc.session.msg("kernel_info_request", {})
    kc.control_channel.send(msg)
    reply = kc.get_control_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg["header"]["msg_id"]
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["implementation"] == "kiln"


def test_state_persists_across_cells_and_counts_go_up(kernel):
    r1, _ = kernel.run("state_var = 41")
    r2, msgs = kernel.run("state_var + 1")
    assert r1["content"]["status"] == "ok"
    assert r2["content"]["execution_count"] == r1["content"]["execution_count"] + 1
    results = [m for m in msgs if m["msg_type"] == "execute_result"]
    assert len(results) == 1
    assert results[0]["content"]["data"]["text/plain"] == "42"
    assert results[0]["content"]["execution_count"] == r2["content"]["execution_count"]


def test_execute_publishes_busy_input_stream_and_idle_in_order(kernel):
    reply, msgs = kernel.run("print('hello')")
    assert types(msgs) == ["status", "execute_input", "stream", "status"]
    assert msgs[0]["content"]["execution_state"] == "busy"
    assert msgs[1]["content"]["code"] == "print('hello')"
    assert msgs[2]["content"] == {"name": "stdout", "text": "hello\n"}
    assert msgs[3]["content"]["execution_state"] == "idle"
    assert reply["content"]["status"] == "ok"


def test_stderr_is_a_stderr_stream(kernel):
    _, msgs = kernel.run("import sys; print('oops', file=sys.stderr)")
    streams = [m["content"] for m in msgs if m["msg_type"] == "stream"]
    assert streams == [{"name": "stderr", "text": "oops\n"}]


def test_output_streams_while_the_cell_is_still_running(kernel):
    kc = kernel.client
    code = "import time\nprint('first')\ntime.sleep(1)\nprint('second')"
    msg_id = kc.execute(code)
    start = time.monotonic()
    first_stream_at = None
    replied_before_first_stream = None
    got = []
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        got.append(msg)
        if msg["msg_type"] == "stream" and first_stream_at is None:
            first_stream_at = time.monotonic()
            replied_before_first_stream = replies_to(kc, [msg_id], 0.01) != []
            idle_seen = any(
                m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in got
            )
            assert not idle_seen
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    ended = time.monotonic()
    (reply,) = replies_to(kc, [msg_id], 10, until=1)
    assert reply["content"]["status"] == "ok"
    assert first_stream_at is not None
    assert not replied_before_first_stream, "execute_reply came before the first output"
    # The first line came while the cell slept, not with its end.
    assert first_stream_at - start < 0.8, first_stream_at - start
    assert ended - first_stream_at > 0.5
    text = "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream")
    assert text == "first\nsecond\n"


def test_figure_is_display_data_with_a_png_of_the_figure_size(kernel):
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig = plt.figure(figsize=(4, 3), dpi=100)\n"
        "plt.plot([1, 2, 3], [3, 1, 2])\n"
        "None"
    )
    reply, msgs = kernel.run(code)
    assert reply["content"]["status"] == "ok"
    displays = [m["content"] for m in msgs if m["msg_type"] == "display_data"]
    assert len(displays) == 1
    data = displays[0]["data"]
    png = base64.b64decode(data["image/png"])
    assert png_size(png) == (400, 300)
    assert "text/plain" in data


def test_display_of_an_object_with_html_gives_a_bundle(kernel):
    code = (
        "class T:\n"
        "    def _repr_html_(self): return '<b>bold</b>'\n"
        "    def __repr__(self): return 'T()'\n"
        "display(T())"
    )
    _, msgs = kernel.run(code)
    displays = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert displays == [{"text/html": "<b>bold</b>", "text/plain": "T()"}]


def test_a_display_between_two_prints_arrives_between_them(kernel):
    _, msgs = kernel.run("print('a')\ndisplay('x')\nprint('b')")
    outs = [m for m in msgs if m["msg_type"] in ("stream", "display_data")]
    assert [(m["msg_type"], m["content"].get("text") or m["content"].get("data")) for m in outs] == [
        ("stream", "a\n"),
        ("display_data", {"text/plain": "'x'"}),
        ("stream", "b\n"),
    ]


def test_a_display_is_published_while_the_cell_still_runs(kernel):
    kc = kernel.client
    msg_id = kc.execute("import time\ndisplay('early')\ntime.sleep(1)")
    got = iopub_until_idle(kc, msg_id)
    (shown_at,) = [t for t, m in got if m["msg_type"] == "display_data"]
    assert got[-1][0] - shown_at > 0.5


def test_the_ipython_display_module_imports_without_ipython(kernel):
    reply, msgs = kernel.run(
        "from IPython.display import display, clear_output, update_display, HTML, Markdown, Image\n"
        "display(HTML('<b>h</b>'), Markdown('*m*'))"
    )
    assert reply["content"]["status"] == "ok"
    displays = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert [d.get("text/html") or d.get("text/markdown") for d in displays] == ["<b>h</b>", "*m*"]


def test_a_display_handle_update_is_update_display_data_with_the_same_id(kernel):
    _, msgs = kernel.run(
        "from IPython.display import display, update_display, HTML\n"
        "h = display(HTML('<i>1</i>'), display_id=True)\n"
        "print('between')\n"
        "h.update(HTML('<i>2</i>'))\n"
        "update_display(HTML('<i>3</i>'), display_id=h.display_id)"
    )
    outs = [m for m in msgs if m["msg_type"] in ("stream", "display_data", "update_display_data")]
    assert types(outs) == ["display_data", "stream", "update_display_data", "update_display_data"]
    ids = {m["content"]["transient"]["display_id"] for m in outs if m["msg_type"] != "stream"}
    assert len(ids) == 1 and ids.pop()
    assert [m["content"]["data"]["text/html"] for m in outs if m["msg_type"] != "stream"] == [
        "<i>1</i>",
        "<i>2</i>",
        "<i>3</i>",
    ]


def test_a_display_named_by_the_cell_keeps_its_name(kernel):
    _, msgs = kernel.run(
        "from IPython.display import update_display\n"
        "display('a', display_id='progress')\n"
        "update_display('b', display_id='progress')"
    )
    outs = [m["content"] for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
    assert [(o["transient"]["display_id"], o["data"]["text/plain"]) for o in outs] == [
        ("progress", "'a'"),
        ("progress", "'b'"),
    ]


def test_displays_past_the_cells_output_cap_are_not_published_and_the_reply_says_so(kernel):
    _, msgs = kernel.run("for i in range(300):\n    display(i)")
    displays = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "display_data"]
    assert displays == [str(i) for i in range(256)]
    notes = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    assert "44 more image(s) or displayed object(s) were dropped" in notes


@pytest.mark.parametrize("wait", [False, True])
def test_clear_output_is_a_clear_output_message_in_its_place(kernel, wait):
    _, msgs = kernel.run(
        f"from IPython.display import clear_output\nprint('old')\nclear_output(wait={wait})\nprint('new')"
    )
    outs = [m for m in msgs if m["msg_type"] in ("stream", "clear_output")]
    assert types(outs) == ["stream", "clear_output", "stream"]
    assert outs[1]["content"] == {"wait": wait}


def test_error_gives_ename_evalue_and_traceback(kernel):
    reply, msgs = kernel.run("def f():\n    raise ValueError('bad value')\nf()")
    c = reply["content"]
    assert c["status"] == "error"
    assert c["ename"] == "ValueError"
    assert c["evalue"] == "bad value"
    assert any("raise ValueError" in line for line in c["traceback"])
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["ename"] == "ValueError"
    assert errors[0]["traceback"] == c["traceback"]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_traceback_is_kilns_with_ipykernels_colours(kernel):
    reply, _ = kernel.run("def inner():\n    return {}['missing']\ninner()")
    c = reply["content"]
    n = c["execution_count"]
    lines = c["traceback"]
    # Without its colours, the traceback is Python's, as over MCP.
    plain = [ANSI.sub("", line) for line in lines]
    assert plain[0] == "Traceback (most recent call last):"
    assert f'  File "<cell {n}>", line 3, in <module>' in plain
    assert f'  File "<cell {n}>", line 2, in inner' in plain
    assert plain[-1] == "KeyError: 'missing'"
    # With them: names red, files and line numbers green, functions cyan.
    assert f'  File \x1b[32m"<cell {n}>"\x1b[39m, line \x1b[32m2\x1b[39m, in \x1b[36minner\x1b[39m' in lines
    assert lines[-1] == "\x1b[31mKeyError\x1b[39m: 'missing'"
    # Source lines are as written.
    assert "    return {}['missing']" in lines


def test_silent_cell_publishes_no_input_or_result_and_keeps_the_count(kernel):
    before, _ = kernel.run("1")
    reply, msgs = kernel.run("silent_var = 7\nsilent_var", silent=True)
    assert "execute_input" not in types(msgs)
    assert "execute_result" not in types(msgs)
    assert reply["content"]["execution_count"] == before["content"]["execution_count"]
    after, _ = kernel.run("silent_var")
    assert after["content"]["execution_count"] == before["content"]["execution_count"] + 1


def test_store_history_false_keeps_the_count(kernel):
    before, _ = kernel.run("2")
    reply, _ = kernel.run("3", store_history=False)
    assert reply["content"]["execution_count"] == before["content"]["execution_count"]


def test_an_error_aborts_the_execute_requests_queued_behind_it(kernel):
    kc = kernel.client
    first = kc.execute("import time; time.sleep(0.5); raise RuntimeError('stop here')")
    second = kc.execute("aborted_var = 1")
    third = kc.execute("aborted_var2 = 2", stop_on_error=False)
    got = replies_to(kc, [first, second, third], 30, until=3)
    replies = {m["parent_header"]["msg_id"]: m["content"] for m in got}
    assert replies[first]["status"] == "error"
    assert replies[second]["status"] == "aborted"
    assert replies[third]["status"] == "aborted"
    reply, msgs = kernel.run("'aborted_var' in globals()")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == [
        "False"
    ]


def test_stop_on_error_false_lets_the_next_cell_run(kernel):
    kc = kernel.client
    first = kc.execute("raise RuntimeError('go on')", stop_on_error=False)
    second = kc.execute("went_on = 1")
    got = replies_to(kc, [first, second], 30, until=2)
    replies = {m["parent_header"]["msg_id"]: m["content"] for m in got}
    assert replies[first]["status"] == "error"
    assert replies[second]["status"] == "ok"


def test_interrupt_request_raises_keyboardinterrupt_and_keeps_state(kernel):
    kc = kernel.client
    kernel.run("kept_across_interrupt = 'yes'")
    msg_id = kc.execute("import time\ntime.sleep(30)")
    # Wait until the cell is running (its input is published when it starts).
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            break
    time.sleep(0.3)
    started = time.monotonic()
    req = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(req)
    ctl = kc.get_control_msg(timeout=10)
    assert ctl["msg_type"] == "interrupt_reply"
    assert ctl["content"]["status"] == "ok"
    (reply,) = replies_to(kc, [msg_id], 10, until=1)
    took = time.monotonic() - started
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert took < 5, took
    _, msgs = kernel.run("kept_across_interrupt")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == [
        "'yes'"
    ]


def test_sigint_to_the_kernel_interrupts_the_cell_and_the_kernel_stays(fresh_kernel):
    k = fresh_kernel
    kc = k.client
    k.run("before_sigint = 1")
    msg_id = kc.execute("import time\ntime.sleep(30)")
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            break
    time.sleep(0.3)
    os.kill(k.proc.pid, signal.SIGINT)
    (reply,) = replies_to(kc, [msg_id], 10, until=1)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert k.proc.poll() is None
    _, msgs = k.run("before_sigint + 1")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["2"]


def test_restart_gives_a_fresh_namespace_in_the_same_process(fresh_kernel):
    k = fresh_kernel
    kc = k.client
    k.run("doomed = 1")
    kc.shutdown(restart=True)
    reply = kc.get_control_msg(timeout=10)
    assert reply["msg_type"] == "shutdown_reply"
    assert reply["content"]["restart"] is True
    r, msgs = k.run("'doomed' in globals()")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == [
        "False"
    ]
    assert r["content"]["execution_count"] == 1
    assert k.proc.poll() is None


def test_shutdown_request_is_answered_and_the_process_exits(fresh_kernel):
    k = fresh_kernel
    kc = k.client
    kc.shutdown()
    reply = kc.get_control_msg(timeout=10)
    assert reply["msg_type"] == "shutdown_reply"
    assert reply["content"] == {"status": "ok", "restart": False}
    assert k.proc.wait(timeout=15) == 0


def test_worker_crash_says_the_state_was_lost_and_the_next_cell_runs(fresh_kernel):
    k = fresh_kernel
    k.run("lost_var = 1")
    reply, msgs = k.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    c = reply["content"]
    assert c["status"] == "error"
    assert "lost" in " ".join(c["traceback"]).lower()
    r, msgs = k.run("'lost_var' in globals()")
    assert r["content"]["status"] == "ok"
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == [
        "False"
    ]


def test_comm_open_is_closed_at_once_and_comm_info_is_empty(kernel):
    kc = kernel.client
    msg = kc.session.msg("comm_open", {"comm_id": "c-1", "target_name": "jupyter.widget", "data": {}})
    kc.shell_channel.send(msg)
    got = iopub_until_idle(kc, msg["header"]["msg_id"], timeout=10)
    closes = [m["content"] for _, m in got if m["msg_type"] == "comm_close"]
    assert closes == [{"comm_id": "c-1", "data": {}}]
    reply = kc.comm_info(reply=True, timeout=10) if hasattr(kc, "comm_info") else None
    if reply is None:
        m = kc.session.msg("comm_info_request", {})
        kc.shell_channel.send(m)
        (reply,) = replies_to(kc, [m["header"]["msg_id"]], 10, until=1)
    assert reply["content"] == {"comms": {}, "status": "ok"}


def ask(kernel, send):
    """The content of the shell reply to the request SEND(client) makes."""
    kc = kernel.client
    (reply,) = replies_to(kc, [send(kc)], 30, until=1)
    return reply["content"]


@pytest.mark.parametrize(
    "code, status, indent",
    [
        ("for i in range(3):", "incomplete", "    "),
        ("x = (1,\n     2", "incomplete", "     "),
        ("x = 1", "complete", None),
        ("import asyncio\nawait asyncio.sleep(0)", "complete", None),
        ("x = )", "invalid", None),
    ],
)
def test_is_complete_is_decided_by_the_sessions_compiler(kernel, code, status, indent):
    c = ask(kernel, lambda kc: kc.is_complete(code))
    assert c["status"] == status
    assert c.get("indent") == indent


def test_complete_request_gives_the_sessions_own_names(kernel):
    kernel.run("class Shape:\n    def area(self): return 1\n    def angle(self): return 2\nsq = Shape()\nsquare_side = 4")
    c = ask(kernel, lambda kc: kc.complete("y = sq.a", 8))
    assert c["status"] == "ok"
    assert c["matches"] == ["sq.angle", "sq.area"]
    assert (c["cursor_start"], c["cursor_end"]) == (4, 8)
    c = ask(kernel, lambda kc: kc.complete("squ", 3))
    assert "square_side" in c["matches"]
    assert all(m.startswith("squ") for m in c["matches"])
    # Cursor positions count characters: "é" is one.
    c = ask(kernel, lambda kc: kc.complete("é = 1; squ", 10))
    assert (c["cursor_start"], c["cursor_end"]) == (7, 10)
    assert "square_side" in c["matches"]


def test_complete_and_inspect_take_no_execution_count(kernel):
    before, _ = kernel.run("10")
    ask(kernel, lambda kc: kc.complete("pri", 3))
    ask(kernel, lambda kc: kc.inspect("print", 2))
    ask(kernel, lambda kc: kc.is_complete("x = 1"))
    after, _ = kernel.run("11")
    assert after["content"]["execution_count"] == before["content"]["execution_count"] + 1


def test_inspect_request_gives_the_signature_and_docstring(kernel):
    kernel.run('def greet(name, punct="!"):\n    """Says hello to NAME."""\n    return "hello " + name + punct')
    c = ask(kernel, lambda kc: kc.inspect("greet(", 6))
    assert c["status"] == "ok" and c["found"] is True
    text = c["data"]["text/plain"]
    assert "Signature: greet(name, punct='!')" in text
    assert "Says hello to NAME." in text
    c = ask(kernel, lambda kc: kc.inspect("no_such_thing", 3))
    assert c["found"] is False and c["data"] == {}


def test_history_request_gives_the_cells_in_order(fresh_kernel):
    for code in ("h_a = 1", "h_b = 2", "h_a + h_b"):
        fresh_kernel.run(code)
    c = ask(fresh_kernel, lambda kc: kc.history(hist_access_type="tail", n=2))
    assert c["status"] == "ok"
    assert [tuple(row) for row in c["history"]] == [(0, 2, "h_b = 2"), (0, 3, "h_a + h_b")]
    c = ask(fresh_kernel, lambda kc: kc.history(hist_access_type="range", session=0, start=1, stop=3))
    assert [row[2] for row in c["history"]] == ["h_a = 1", "h_b = 2"]
    c = ask(fresh_kernel, lambda kc: kc.history(hist_access_type="search", pattern="h_a*"))
    assert [row[2] for row in c["history"]] == ["h_a = 1", "h_a + h_b"]


def test_the_tracebacks_cell_number_is_the_execution_count(fresh_kernel):
    reply, _ = fresh_kernel.run("1/0")
    n = reply["content"]["execution_count"]
    assert n == 1
    assert any(f"<cell {n}>" in line for line in reply["content"]["traceback"])


def test_input_is_asked_on_stdin_when_allowed(kernel):
    prompts = []

    def answer(msg):
        prompts.append((msg["content"]["prompt"], msg["content"]["password"]))
        kernel.client.input("Ada" if not msg["content"]["password"] else "s3cret")

    reply = kernel.client.execute_interactive(
        "import getpass\nwho = input('Name? ')\n(who, getpass.getpass('Key: '))",
        allow_stdin=True,
        stdin_hook=answer,
        timeout=30,
    )
    assert reply["content"]["status"] == "ok"
    assert prompts == [("Name? ", False), ("Key: ", True)]
    back, _ = kernel.run("who")
    assert back["content"]["status"] == "ok"


def test_input_without_stdin_raises_eoferror_saying_so(kernel):
    reply, _ = kernel.run("input('nobody: ')", allow_stdin=False)
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "EOFError"
    assert "input() is not available" in c["evalue"]


def test_an_interrupted_input_leaves_the_session_serving(kernel):
    kc = kernel.client
    msg_id = kc.execute("try:\n    input('wait: ')\nexcept KeyboardInterrupt:\n    caught = True\ncaught", allow_stdin=True)
    req = kc.get_stdin_msg(timeout=30)
    assert req["msg_type"] == "input_request" and req["content"]["prompt"] == "wait: "
    kc.control_channel.send(kc.session.msg("interrupt_request", {}))
    (reply,) = replies_to(kc, [msg_id], 30, until=1)
    assert reply["content"]["status"] == "ok"
    # A late answer to the interrupted prompt goes nowhere.
    kc.input("too late")
    after, _ = kernel.run("caught")
    assert after["content"]["status"] == "ok"


def test_user_expressions_are_evaluated_after_the_cell_in_its_namespace(kernel):
    reply, msgs = kernel.run(
        "ue_base = 20",
        user_expressions={"double": "ue_base * 2", "bad": "1/0", "text": "'a/b' + \"\\u00e9\""},
    )
    c = reply["content"]
    assert c["status"] == "ok"
    ue = c["user_expressions"]
    assert ue["double"] == {"status": "ok", "data": {"text/plain": "40"}, "metadata": {}}
    assert ue["bad"]["status"] == "error"
    assert ue["bad"]["ename"] == "ZeroDivisionError"
    assert ue["text"]["data"]["text/plain"] == "'a/b\u00e9'"
    # The helper prints its answer: none of it reaches the frontend, and
    # it leaves no name behind.
    assert "stream" not in types(msgs)
    _, msgs = kernel.run("[n for n in globals() if 'kiln' in n]")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == [
        "[]"
    ]


def test_user_expressions_take_no_execution_number_and_no_history_row(fresh_kernel):
    first, _ = fresh_kernel.run("ue_n = 1", user_expressions={"n": "ue_n"})
    assert first["content"]["user_expressions"]["n"]["data"]["text/plain"] == "1"
    second, _ = fresh_kernel.run("ue_n + 1")
    assert second["content"]["execution_count"] == first["content"]["execution_count"] + 1
    c = ask(fresh_kernel, lambda kc: kc.history(hist_access_type="tail", n=10))
    assert [row[2] for row in c["history"]] == ["ue_n = 1", "ue_n + 1"]


def test_a_hanging_user_expression_is_interrupted_at_the_deadline_and_the_session_kept(tmp_path):
    k = Kernel(tmp_path, "--timeout", "2")
    try:
        t0 = time.monotonic()
        reply, _ = k.run(
            "ue_kept = 5",
            user_expressions={"slow": "__import__('time').sleep(600)", "after": "ue_kept"},
            timeout=60,
        )
        assert time.monotonic() - t0 < 30
        ue = reply["content"]["user_expressions"]
        assert ue["slow"]["status"] == "error" and ue["slow"]["ename"] == "KeyboardInterrupt"
        assert ue["after"]["status"] == "error" and "not evaluated" in ue["after"]["evalue"]
        _, msgs = k.run("ue_kept")
        assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["5"]
    finally:
        k.stop()


def test_user_expressions_are_not_evaluated_after_an_error(kernel):
    reply, _ = kernel.run("raise KeyError('k')", user_expressions={"one": "1"})
    assert reply["content"]["status"] == "error"
    assert reply["content"].get("user_expressions", {}) == {}


def test_a_shown_pil_image_is_a_png_of_its_size(kernel):
    _, msgs = kernel.run("from PIL import Image\ndisplay(Image.new('RGB', (30, 20), 'red'))")
    displays = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert len(displays) == 1
    assert png_size(base64.b64decode(displays[0]["image/png"])) == (30, 20)


def test_a_dataframe_value_is_an_execute_result_with_html(kernel):
    _, msgs = kernel.run("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    results = [m["content"]["data"] for m in msgs if m["msg_type"] == "execute_result"]
    assert len(results) == 1
    assert "<table" in results[0]["text/html"]
    assert "a" in results[0]["text/plain"]
    # The value's forms are its result, not a display of their own.
    assert "display_data" not in types(msgs)


def test_shutdown_while_a_cell_runs_answers_it_and_exits(fresh_kernel):
    k = fresh_kernel
    kc = k.client
    running = kc.execute("import time\ntime.sleep(30)")
    queued = kc.execute("never_runs = 1")
    time.sleep(0.5)
    started = time.monotonic()
    kc.shutdown()
    replies = {m["parent_header"]["msg_id"]: m["content"] for m in replies_to(kc, [running, queued], 10, until=2)}
    assert replies[running]["status"] == "error"
    assert replies[queued]["status"] == "aborted"
    assert k.proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 5


def test_restart_while_cells_are_queued_aborts_them_and_serves_on(fresh_kernel):
    k = fresh_kernel
    kc = k.client
    running = kc.execute("import time\nvar_before = 1\ntime.sleep(30)")
    queued = kc.execute("queued_var = 1")
    time.sleep(0.5)
    kc.shutdown(restart=True)
    replies = {m["parent_header"]["msg_id"]: m["content"] for m in replies_to(kc, [running, queued], 10, until=2)}
    assert replies[running]["status"] == "error"
    assert replies[queued]["status"] == "aborted"
    _, msgs = k.run("[n for n in ('var_before', 'queued_var') if n in globals()]")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["[]"]

// run_shell: a shell command in a session's sandbox, beside its Python
// cells.  Its files are the cells' and the other way round; its exit status
// or signal is in the reply; its deadline interrupts (and after the grace
// kills) its process group only, never the session's Python state.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, withRawServer, run, runFull, assertKept, dump, sessionPid, hostPidsWithArg, pollUntil, TEST_TIMEOUT, REQUEST_TIMEOUT } from './helpers.mjs';
import { shell, shellFull, textOf } from './shell-helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('run_shell', () => {
  const kiln = useServer();

  test('without a session_id it starts a new session and names it in the text', opts, async () => {
    const r = await shellFull(kiln.client, 'echo hello');
    assert.equal(r.isError, false, dump(r));
    const sc = r.structuredContent;
    assert.equal(sc.new_session, true, dump(sc));
    assert.match(sc.session_id, /^[0-9a-f]{16}$/);
    const lines = textOf(r).split('\n');
    assert.match(lines[0], new RegExp(`^\\[session ${sc.session_id} · command 1 · \\d+ ms · new session\\]$`), lines[0]);
    assert.equal(lines[1], 'hello');
    assert.equal(lines.at(-1), '[exit status 0]');
    assert.equal(sc.stdout, 'hello\n');
    // The session is a real one: a cell runs in it afterwards.
    const cell = await run(kiln.client, '6*7', { session_id: sc.session_id });
    assert.equal(cell.result, '42', dump(cell));
    assert.equal(cell.execution_count, 2, dump(cell));
  });

  test('a file a cell wrote is read by the command, and one the command wrote by a cell', opts, async () => {
    const first = await run(kiln.client, 'open("from_python.txt", "w").write("written by python")');
    const sid = first.session_id;
    const sc = await shell(kiln.client, 'cat from_python.txt && printf "written by the shell" > from_shell.txt', { session_id: sid });
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.stdout, 'written by python');
    assert.deepEqual(sc.files.map((f) => f.path), ['from_shell.txt'], dump(sc));
    assert.equal(sc.files[0].uri, `kiln://sessions/${sid}/files/from_shell.txt`);
    const back = await run(kiln.client, 'open("from_shell.txt").read()', { session_id: sid });
    assert.equal(back.result, "'written by the shell'", dump(back));
  });

  test('stdout and stderr come back apart', opts, async () => {
    const r = await shellFull(kiln.client, 'echo out; echo err >&2');
    const sc = r.structuredContent;
    assert.equal(sc.stdout, 'out\n', dump(sc));
    assert.equal(sc.stderr, 'err\n', dump(sc));
    assert.match(textOf(r), /\nout\n\[stderr\]\nerr\n\[exit status 0\]$/, textOf(r));
  });

  test('exit status 0 is ok, 3 is an error with exit_code 3, and a signal is named', opts, async () => {
    const ok = await shellFull(kiln.client, 'true');
    assert.equal(ok.isError, false, dump(ok));
    assert.equal(ok.structuredContent.status, 'ok');
    assert.equal(ok.structuredContent.exit_code, 0);
    assert.equal(ok.structuredContent.signal, null);

    const three = await shellFull(kiln.client, 'echo before; exit 3');
    assert.equal(three.isError, true, dump(three));
    assert.equal(three.structuredContent.status, 'error');
    assert.equal(three.structuredContent.exit_code, 3);
    assert.equal(three.structuredContent.signal, null);
    assert.match(textOf(three), /^\[session [0-9a-f]+ · command 1 · \d+ ms · new session · error\]\nbefore\n\[exit status 3\]$/, textOf(three));

    const killed = await shellFull(kiln.client, 'kill -TERM $$');
    assert.equal(killed.isError, true, dump(killed));
    assert.equal(killed.structuredContent.status, 'error');
    assert.equal(killed.structuredContent.exit_code, null);
    assert.equal(killed.structuredContent.signal, 'SIGTERM');
    assert.match(textOf(killed), /\[killed by SIGTERM \(signal 15\)\]$/, textOf(killed));
  });

  test('it runs in /work by default, and in workdir beneath it', opts, async () => {
    const top = await shell(kiln.client, 'pwd');
    assert.equal(top.stdout, '/work\n', dump(top));
    const made = await shell(kiln.client, 'mkdir -p data/raw', { session_id: top.session_id });
    assert.equal(made.status, 'ok', dump(made));
    const sub = await shell(kiln.client, 'pwd', { session_id: top.session_id, workdir: 'data/raw' });
    assert.equal(sub.stdout, '/work/data/raw\n', dump(sub));
  });

  test('a workdir that would leave /work is refused before anything runs', opts, async () => {
    const first = await run(kiln.client, 'n = 1');
    for (const workdir of ['..', '../etc', '/etc', 'data/../../etc', './data', 'a//b']) {
      const r = await shellFull(kiln.client, 'echo ran > /work/ran.txt', { session_id: first.session_id, workdir });
      assert.equal(r.isError, true, dump(r));
      assert.equal(r.structuredContent, undefined, dump(r));
      assert.equal(textOf(r),
        `workdir '${workdir}' is not a directory under /work: give a path relative to /work, without '..', '.' or empty parts (omit it for /work itself)`);
    }
    const after = await run(kiln.client, 'import os\n(os.path.exists("ran.txt"), n)', { session_id: first.session_id });
    assert.equal(after.result, '(False, 1)', dump(after));
  });

  test('a workdir that is a symlink out of /work, or missing, is an error that says so', opts, async () => {
    const first = await run(kiln.client, 'import os\nos.symlink("/etc", "out")\nos.symlink("/work/..", "up")');
    const sid = first.session_id;
    for (const workdir of ['out', 'up']) {
      const sc = await shell(kiln.client, 'pwd', { session_id: sid, workdir });
      assert.equal(sc.status, 'error', dump(sc));
      assert.equal(sc.error?.type, 'ShellError', dump(sc));
      assert.equal(sc.error.message, `cannot use /work/${workdir} as the command's directory: it leads outside /work`);
      assert.equal(sc.stdout, '', dump(sc));
    }
    const missing = await shell(kiln.client, 'pwd', { session_id: sid, workdir: 'nowhere' });
    assert.equal(missing.status, 'error', dump(missing));
    assert.equal(missing.error?.message, "cannot use /work/nowhere as the command's directory: No such file or directory");
  });

  test('a session_id that is unknown is refused', opts, async () => {
    const r = await shellFull(kiln.client, 'true', { session_id: 'feedfeedfeedfeed' });
    assert.equal(r.isError, true);
    assert.match(textOf(r), /^unknown session 'feedfeedfeedfeed'/);
  });

  test('python, python3 and pip on PATH are the session\'s own', opts, async () => {
    const cell = await run(kiln.client, 'import sys\nsys.executable');
    const sc = await shell(kiln.client, 'command -v python3; python -c "import numpy; print(numpy.__name__)"', { session_id: cell.session_id });
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.stdout, `${JSON.parse(cell.result.replace(/^'|'$/g, '"'))}\nnumpy\n`, dump(sc));
  });

  test('the programs the description names are on PATH', opts, async () => {
    const { tools } = await kiln.client.listTools();
    const tool = tools.find((t) => t.name === 'run_shell');
    const line = tool.description.split('\n').find((l) => l.startsWith('Programs on PATH: '));
    assert.ok(line, tool.description);
    const names = line.slice('Programs on PATH: '.length).replace(/ \([^)]*\)/g, '').replace(/;.*/, '')
      .split(', ').map((n) => (n === 'coreutils' ? 'ls' : n));
    for (const must of ['bash', 'ls', 'grep', 'sed', 'awk', 'find', 'tar', 'gzip']) assert.ok(names.includes(must), line);
    const sc = await shell(kiln.client, `for p in ${names.join(' ')}; do command -v "$p" >/dev/null || echo "missing $p"; done`);
    assert.equal(sc.stdout, '', dump(sc));
    assert.equal(sc.status, 'ok', dump(sc));
  });

  test('signals are at their defaults: yes | head ends quietly, and no trap is set', opts, async () => {
    const sc = await shell(kiln.client, 'yes | head -n 2; trap -p');
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.stdout, 'y\ny\n', dump(sc));
    assert.equal(sc.stderr, '', dump(sc));
  });

  test('stdin is empty, even when a cell put something on the worker\'s', opts, async () => {
    const first = await run(kiln.client, 'import os\nopen("feed.txt", "w").write("fed")\nos.dup2(os.open("feed.txt", os.O_RDONLY), 0)');
    assert.equal(first.status, 'ok', dump(first));
    const sc = await shell(kiln.client, 'cat; echo "[$?]"', { session_id: first.session_id });
    assert.equal(sc.stdout, '[0]\n', dump(sc));
  });

  test('a command waits for the cell queued before it, and a cell for the command before it', opts, async () => {
    const first = await run(kiln.client, 'import time');
    const sid = first.session_id;
    const [cell, cmd, after] = await Promise.all([
      run(kiln.client, 'time.sleep(1)\nopen("order.txt", "w").write("cell\\n")', { session_id: sid }),
      shell(kiln.client, 'cat order.txt; sleep 1; echo shell >> order.txt', { session_id: sid }),
      run(kiln.client, 'open("order.txt").read()', { session_id: sid }),
    ]);
    assert.equal(cell.status, 'ok', dump(cell));
    assert.equal(cmd.stdout, 'cell\n', dump(cmd));
    assert.equal(after.result, "'cell\\nshell\\n'", dump(after));
    assert.deepEqual([cell.execution_count, cmd.execution_count, after.execution_count], [2, 3, 4]);
  });

  test('the command has a process group of its own, apart from the worker\'s', opts, async () => {
    const sc = await shell(kiln.client, 'echo $$; cut -d" " -f5 /proc/$$/stat; cut -d" " -f5 /proc/$PPID/stat; cat /proc/$PPID/comm');
    assert.equal(sc.status, 'ok', dump(sc));
    const [me, myGroup, workerGroup, worker] = sc.stdout.trim().split('\n');
    assert.equal(worker, 'kiln-worker', dump(sc));
    assert.equal(myGroup, me, dump(sc));
    assert.notEqual(workerGroup, me, dump(sc));
  });
});

describe('run_shell at its deadline (--grace 1)', () => {
  const kiln = useServer({ args: ['--grace', '1'] });

  test('a command past its timeout gets SIGINT, and the session keeps its Python variables and worker', opts, async () => {
    const first = await run(kiln.client, 'x = 5');
    const pid = await sessionPid(kiln.client, first.session_id);
    const r = await shellFull(kiln.client, 'echo started; sleep 30', { session_id: first.session_id, timeout_s: 1 });
    assert.equal(r.isError, true, dump(r));
    const sc = r.structuredContent;
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.equal(sc.signal, 'SIGINT', dump(sc));
    assert.equal(sc.exit_code, null, dump(sc));
    assert.equal(sc.state_lost, false, dump(sc));
    assert.equal(sc.stdout, 'started\n', dump(sc));
    assert.equal(sc.notice, "The command was interrupted (SIGINT to its process group) at its 1 s deadline. The session's Python state is kept.");
    await assertKept(kiln.client, first.session_id, 'x', '5');
    assert.equal(await sessionPid(kiln.client, first.session_id), pid);
  });

  test('a command that ignores SIGINT is killed after the grace, and the session keeps its Python variables and worker', opts, async () => {
    const first = await run(kiln.client, 'y = "kept"');
    const pid = await sessionPid(kiln.client, first.session_id);
    const marker = `31.${process.pid}1`;
    const r = await shellFull(kiln.client, `trap '' INT; sleep ${marker} & sleep ${marker}`, { session_id: first.session_id, timeout_s: 1 });
    const sc = r.structuredContent;
    assert.equal(sc.status, 'killed', dump(sc));
    assert.equal(sc.signal, 'SIGKILL', dump(sc));
    assert.equal(sc.state_lost, false, dump(sc));
    assert.equal(sc.notice, "The command did not stop within 1 s of the interrupt (SIGINT) sent at its 1 s deadline: its process group was killed (SIGKILL). The session's Python state is kept.");
    assert.match(textOf(r), /\[killed by SIGKILL \(signal 9\)\]$/);
    await assertKept(kiln.client, first.session_id, 'y', "'kept'");
    assert.equal(await sessionPid(kiln.client, first.session_id), pid);
    // Both sleeps (the one in the background too) were in the group.
    assert.ok(await pollUntil(() => hostPidsWithArg(marker).length === 0), 'a sleep outlived the kill');
  });

  test('what the interrupted command left in its group is killed with it', opts, async () => {
    const marker = `32.${process.pid}2`;
    const sc = await shell(kiln.client, `(trap '' INT; exec sleep ${marker}) & sleep 30`, { timeout_s: 1 });
    assert.equal(sc.status, 'interrupted', dump(sc));
    assert.ok(await pollUntil(() => hostPidsWithArg(marker).length === 0), 'the background sleep outlived the deadline');
    const again = await shell(kiln.client, 'echo alive', { session_id: sc.session_id });
    assert.equal(again.stdout, 'alive\n', dump(again));
  });

  test('cancelling the call interrupts the command and the session lives on', opts, async () => {
    const first = await run(kiln.client, 'z = 3');
    const ac = new AbortController();
    // Longer than the test may take: only the cancel's interrupt ends it.
    const call = kiln.client.callTool({ name: 'run_shell', arguments: { command: 'sleep 600', session_id: first.session_id, timeout_s: 600 } }, undefined,
      { timeout: REQUEST_TIMEOUT, signal: ac.signal });
    setTimeout(() => ac.abort(), 500);
    await assert.rejects(call);
    await assertKept(kiln.client, first.session_id, 'z', '3');
  });
});

describe('run_shell output (--max-output 10000)', () => {
  const kiln = useServer({ args: ['--max-output', '10000'] });

  test('output over the cap keeps its head and tail and counts what was dropped', opts, async () => {
    const sc = await shell(kiln.client, 'echo HEAD; head -c 200000 /dev/zero | tr "\\0" m; echo; echo TAIL; echo E >&2');
    assert.equal(sc.status, 'ok', dump({ ...sc, stdout: sc.stdout.slice(0, 100) }));
    assert.ok(sc.stdout.startsWith('HEAD\n'), sc.stdout.slice(0, 40));
    assert.ok(sc.stdout.endsWith('TAIL\n'), sc.stdout.slice(-40));
    assert.ok(sc.stdout.length <= 10_000 + 1024, `kept ${sc.stdout.length}`);
    assert.ok(sc.stdout_dropped > 0 && sc.stdout_dropped + sc.stdout.length >= 200_011, dump({ ...sc, stdout: '' }));
    assert.equal(sc.stderr, 'E\n');
  });

  test('a long output is kept whole (within the cap) as a resource the reply names', opts, async () => {
    const r = await shellFull(kiln.client, 'seq 1 2000');
    const sc = r.structuredContent;
    assert.equal(sc.stdout_uri, `kiln://sessions/${sc.session_id}/cells/1/stdout`, dump(sc));
    const read = await kiln.client.readResource({ uri: sc.stdout_uri });
    const lines = read.contents[0].text.trimEnd().split('\n');
    assert.equal(lines.length, 2000);
    assert.equal(lines.at(-1), '2000');
  });
});

describe('run_shell in a hibernated session (--idle-hibernate 1)', () => {
  const kiln = useServer({ args: ['--idle-hibernate', '1'] });

  test('the command restores the session, sees its files and says it was restored; its variables are back', opts, async () => {
    const first = await run(kiln.client, 'x = 5\nopen("kept.txt", "w").write("kept")');
    const state = async () => {
      const r = await kiln.client.callTool({ name: 'list_sessions', arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT });
      return r.structuredContent.sessions.find((s) => s.session_id === first.session_id)?.state;
    };
    assert.ok(await pollUntil(async () => (await state()) === 'hibernated', 30_000, 200), 'the session never hibernated');
    const sc = await shell(kiln.client, 'cat kept.txt', { session_id: first.session_id });
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.stdout, 'kept', dump(sc));
    assert.match(sc.notice ?? '', /^This session was restored from its snapshot of .*, whole\.$/, dump(sc));
    assert.equal(sc.state_lost, false, dump(sc));
    await assertKept(kiln.client, first.session_id, 'x', '5');
  });
});

describe('run_shell output as progress', () => {
  const kiln = useServer();

  test('a command printing every half second streams its lines before the reply', opts, async () => {
    const seen = [];
    let answered = false;
    const r = await shellFull(kiln.client, 'for i in 0 1 2 3 4 5; do echo tick $i; sleep 0.5; done; echo done >&2', {},
      { onprogress: (p) => seen.push({ ...p, beforeReply: !answered }) });
    answered = true;
    assert.equal(r.isError, false, dump(r));
    const before = seen.filter((p) => p.beforeReply);
    assert.ok(before.length >= 3, `only ${before.length} progress notifications: ${dump(seen)}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress, dump(seen));
    // The SDK handles a notification a microtask after it arrives but a
    // response at once, and drops progress for a request it has answered:
    // the last lines, flushed just before the reply, may come in the same
    // read as the reply and be lost to it.  Everything else it sees.
    const whole = 'tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\n[stderr] done\n';
    const streamed = seen.map((p) => p.message).join('');
    assert.ok(whole.startsWith(streamed) && streamed.startsWith('tick 0\ntick 1\ntick 2\ntick 3\ntick 4\n'), dump(seen));
  });

  test('on the wire, everything the command wrote is streamed before the reply', opts, async () => {
    await withRawServer({}, async (raw) => {
      const id = 77;
      const response = await raw.request('tools/call', {
        name: 'run_shell',
        // "done" follows "last" at once: it waits for the flush before the
        // reply, the interval since the previous one not being over.
        arguments: { command: 'for i in 0 1 2; do echo tick $i; sleep 0.3; done; echo last; echo done >&2' },
        _meta: { progressToken: 'shell-progress' },
      }, id);
      assert.equal(response.result?.isError, false, dump(response));
      const at = raw.log.indexOf(response);
      const progress = raw.log.filter((m) => m.method === 'notifications/progress'
        && m.params?.progressToken === 'shell-progress');
      assert.ok(progress.length >= 2, dump(raw.log));
      for (const p of progress) assert.ok(raw.log.indexOf(p) < at, `progress after the reply: ${dump(raw.log)}`);
      assert.equal(progress.map((p) => p.params.message).join(''), 'tick 0\ntick 1\ntick 2\nlast\n[stderr] done\n');
    });
  });
});

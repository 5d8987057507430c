// install_packages: wheels from a package index served on loopback
// (tests/integration/packages/build_index.py), installed by kiln's jailed
// installer into a running session, which imports them at once and still
// has no network.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  useServer, withServer, run, callTool, resultText, dump, pollUntil, childrenOf, commOf, hostPidsWithArg, sessionPid,
  TEST_TIMEOUT,
  HOOK_TIMEOUT,
} from './helpers.mjs';
import { shell } from './shell-helpers.mjs';
import { startHttp, raw } from './http-helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const opts = { timeout: TEST_TIMEOUT };

const ALLOWED = ['kilntest-pure', 'kilntest-native', 'kilntest-dep', 'kilntest-evil',
  'kilntest-conflict', 'kilntest-sdistonly', 'kilntest-big'];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Builds the test index and serves it on loopback; returns { url, port, stop() }. */
async function startIndex() {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-index-'));
  const built = spawnSync('python3', [join(here, 'packages', 'build_index.py'), dir], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`build_index.py failed: ${built.stderr}`);
  const port = await freePort();
  const server = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', String(port), '--directory', dir],
    { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/simple`;
  const up = await pollUntil(async () => {
    try {
      return (await fetch(`${url}/`)).ok;
    } catch {
      return false;
    }
  }, 10_000);
  if (!up) throw new Error('the test index did not start');
  return {
    url,
    port,
    stop() {
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function install(client, sessionId, packages) {
  return callTool(client, 'install_packages', { session_id: sessionId, packages });
}

async function newSession(client) {
  const sc = await run(client, 'kept = "still here"');
  assert.equal(sc.status, 'ok', dump(sc));
  return sc.session_id;
}

const index = {};
before(async () => Object.assign(index, await startIndex()), { timeout: HOOK_TIMEOUT });
after(() => index.stop?.());

function serverArgs(extra = []) {
  return ['--package-index', index.url, '--allow-packages', ALLOWED.join(','), ...extra];
}

describe('install_packages', () => {
  // The index's URL is known only once it runs: the options are read
  // when the suite's server starts, after the index's before().
  const kilnOptions = { get args() { return serverArgs(); } };
  const kiln = useServer(kilnOptions);

  test('a pure and a binary wheel are importable in the same session at once, its variables kept', opts, async () => {
    const sid = await newSession(kiln.client);
    const r = await install(kiln.client, sid, ['kilntest-pure==1.0', 'kilntest-native==1.0']);
    assert.equal(r.isError, false, resultText(r));
    assert.deepEqual(r.structuredContent.installed.sort(), ['kilntest-native 1.0', 'kilntest-pure 1.0']);
    assert.equal(r.structuredContent.cached, false);
    const sc = await run(kiln.client,
      'import kilntest_pure, kilntest_native\n(kilntest_pure.VALUE, kilntest_native.add(2, 3), kilntest_native.platform(), kept)',
      { session_id: sid });
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, "(42, 5, 'native', 'still here')");
    assert.equal(sc.state_lost, false);
  });

  test('a dependency comes along, and a command in the session imports the packages too', opts, async () => {
    const sid = await newSession(kiln.client);
    const r = await install(kiln.client, sid, ['kilntest-dep==1.0']);
    assert.equal(r.isError, false, resultText(r));
    assert.deepEqual(r.structuredContent.installed.sort(), ['kilntest-dep 1.0', 'kilntest-pure 1.0']);
    const sc = await run(kiln.client, 'import kilntest_dep\nkilntest_dep.DOUBLE', { session_id: sid });
    assert.equal(sc.result, '84', dump(sc));
    const sh = await shell(kiln.client, 'python3 -c "import kilntest_dep; print(kilntest_dep.DOUBLE)"', { session_id: sid });
    assert.equal(sh.stdout, '84\n', dump(sh));
  });

  test('after an install the cell still has no network: neither the index nor DNS', opts, async () => {
    const sid = await newSession(kiln.client);
    const r = await install(kiln.client, sid, ['kilntest-pure==1.0']);
    assert.equal(r.isError, false, resultText(r));
    const sc = await run(kiln.client, [
      'import socket',
      'def reach(host, port):',
      '    try:',
      '        socket.create_connection((host, port), timeout=3).close()',
      '        return "connected"',
      '    except OSError as e:',
      '        return type(e).__name__',
      'def resolve(name):',
      '    try:',
      '        socket.getaddrinfo(name, 443)',
      '        return "resolved"',
      '    except OSError as e:',
      '        return type(e).__name__',
      `(reach("127.0.0.1", ${index.port}), resolve("pypi.org"))`,
    ].join('\n'), { session_id: sid });
    assert.equal(sc.status, 'ok', dump(sc));
    assert.doesNotMatch(sc.result, /connected|resolved/, dump(sc));
    // The host itself reaches the index: the refusal is the jail's.
    assert.ok((await fetch(`${index.url}/`)).ok);
  });

  test('an sdist-only package is refused as such, and its setup.py never runs', opts, async () => {
    const sid = await newSession(kiln.client);
    const r = await install(kiln.client, sid, ['kilntest-sdistonly==1.0']);
    assert.equal(r.isError, true, resultText(r));
    assert.match(resultText(r), /wheels only, never source distributions/);
    assert.match(resultText(r), /No matching distribution found for kilntest-sdistonly==1\.0/);
    assert.equal(existsSync('/tmp/kilntest-sdist-ran'), false);
  });

  test('a name outside the allowlist is refused before anything runs', opts, async () => {
    const sid = await newSession(kiln.client);
    const r = await install(kiln.client, sid, ['requests==2.32.3']);
    assert.equal(r.isError, true, resultText(r));
    assert.match(resultText(r), /'requests' is not in the allowed packages \(--allow-packages\)/);
  });

  test('a requirement that is not one (an option, a URL, a path, a marker) is refused', opts, async () => {
    const sid = await newSession(kiln.client);
    for (const bad of ['--index-url=http://evil/simple', 'x @ https://evil/x.whl', './local.whl',
      'kilntest-pure==1.0; python_version>"3"', 'kilntest pure', '']) {
      const r = await install(kiln.client, sid, [bad]);
      assert.equal(r.isError, true, `${bad}: ${resultText(r)}`);
      assert.match(resultText(r), /requirement|specifier|unexpected|name/, `${bad}: ${resultText(r)}`);
    }
  });

  test('a wheel whose RECORD escapes its directory writes nothing, there or anywhere', opts, async () => {
    const sid = await newSession(kiln.client);
    const r = await install(kiln.client, sid, ['kilntest-evil==1.0']);
    assert.equal(r.isError, true, resultText(r));
    assert.match(resultText(r), /tried to write outside its directory/);
    assert.equal(existsSync('/tmp/kilntest-escaped'), false);
    const sc = await run(kiln.client, 'import importlib.util\nimportlib.util.find_spec("kilntest_evil") is None', { session_id: sid });
    assert.equal(sc.result, 'True', dump(sc));
  });

  test('a package needing other versions of the preinstalled ones is refused with pip\'s reason', opts, async () => {
    const sid = await newSession(kiln.client);
    const r = await install(kiln.client, sid, ['kilntest-conflict==1.0']);
    assert.equal(r.isError, true, resultText(r));
    assert.match(resultText(r), /conflict with each other or with the preinstalled packages/);
    assert.match(resultText(r), /kilntest-conflict 1\.0 depends on numpy>=999/);
    // numpy is still the preinstalled one.
    const sc = await run(kiln.client, 'import numpy\nnumpy.__file__.startswith("/opt/packages")', { session_id: sid });
    assert.equal(sc.result, 'False', dump(sc));
  });

  test('a second session installing the same pins gets the same files, linked from the cache', opts, async () => {
    const a = await newSession(kiln.client);
    const b = await newSession(kiln.client);
    const first = await install(kiln.client, a, ['kilntest-native==1.0']);
    assert.equal(first.isError, false, resultText(first));
    const second = await install(kiln.client, b, ['kilntest-native==1.0']);
    assert.equal(second.isError, false, resultText(second));
    assert.equal(second.structuredContent.cached, true, resultText(second));
    const inode = 'import os, kilntest_native\nos.stat(kilntest_native.__file__).st_ino';
    const ia = await run(kiln.client, inode, { session_id: a });
    const ib = await run(kiln.client, inode, { session_id: b });
    assert.equal(ia.status, 'ok', dump(ia));
    assert.equal(ia.result, ib.result, 'one file on disk, linked into both sessions');
  });

  test('a session keeps one version of a package', opts, async () => {
    const sid = await newSession(kiln.client);
    const one = await install(kiln.client, sid, ['kilntest-pure==1.0']);
    assert.equal(one.isError, false, resultText(one));
    const two = await install(kiln.client, sid, ['kilntest-pure==2.0']);
    assert.equal(two.isError, true, resultText(two));
    assert.match(resultText(two), /kilntest-pure 1\.0 is installed in this session already/);
    const sc = await run(kiln.client, 'import kilntest_pure\nkilntest_pure.VALUE', { session_id: sid });
    assert.equal(sc.result, '42', dump(sc));
  });

  test('an unknown session is refused', opts, async () => {
    const r = await install(kiln.client, '0123456789abcdef', ['kilntest-pure==1.0']);
    assert.equal(r.isError, true, resultText(r));
    assert.match(resultText(r), /unknown session/);
  });

  test('pip install typed in a cell says to use install_packages, at once', opts, async () => {
    const sid = await newSession(kiln.client);
    for (const line of ['pip install kilntest-pure', '%pip install kilntest-pure', '!pip install kilntest-pure',
      'x = 1\n!python -m pip install kilntest-pure']) {
      const sc = await run(kiln.client, line, { session_id: sid });
      assert.equal(sc.status, 'error', dump(sc));
      assert.equal(sc.error.type, 'PackageInstallError', `${line}: ${dump(sc)}`);
      assert.match(sc.error.message, /install_packages/);
    }
    // Valid Python that mentions it is left alone.
    const ok = await run(kiln.client, 's = """\npip install x\n"""\nlen(s)', { session_id: sid });
    assert.equal(ok.result, '15', dump(ok));
    // A pip a cell or a command starts gives up at once instead of
    // retrying the network, and says what to do instead.
    const sub = await run(kiln.client, [
      'import subprocess, sys',
      'p = subprocess.run([sys.executable, "-m", "pip", "install", "kilntest-pure"], capture_output=True, text=True)',
      '(p.returncode, "Retrying" in p.stderr + p.stdout, "install_packages" in p.stderr)',
    ].join('\n'), { session_id: sid, timeout_s: 60 });
    assert.equal(sub.result, '(1, False, True)', dump(sub));
    const sh = await shell(kiln.client, 'pip install kilntest-pure', { session_id: sid });
    assert.equal(sh.exit_code, 1, dump(sh));
    assert.match(sh.stderr, /install_packages/);
  });
});

describe('install_packages limits', () => {
  test('a dependency outside the allowlist fails the install, which leaves nothing', opts, async () => {
    await withServer({ args: ['--package-index', index.url, '--allow-packages', 'kilntest-dep'] }, async (kiln) => {
      const sid = await newSession(kiln.client);
      const r = await install(kiln.client, sid, ['kilntest-dep==1.0']);
      assert.equal(r.isError, true, resultText(r));
      assert.match(resultText(r), /kilntest-pure 1\.0 \(a dependency\) is not in the allowed packages/);
      const sc = await run(kiln.client, 'import importlib.util\nimportlib.util.find_spec("kilntest_dep") is None', { session_id: sid });
      assert.equal(sc.result, 'True', dump(sc));
    });
  });

  test('a package larger than --max-package-size is refused, naming its size', opts, async () => {
    await withServer({ args: serverArgs(['--max-package-size', '1M']) }, async (kiln) => {
      const sid = await newSession(kiln.client);
      const r = await install(kiln.client, sid, ['kilntest-big==1.0']);
      assert.equal(r.isError, true, resultText(r));
      assert.match(resultText(r), /kilntest-big 1\.0 is 3\.0 MiB installed, over --max-package-size \(1\.0 MiB\)/);
      const small = await install(kiln.client, sid, ['kilntest-pure==1.0']);
      assert.equal(small.isError, false, resultText(small));
    });
  });

  test('an allowlist file is read, with comments', opts, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-allow-'));
    const file = join(dir, 'allowed.txt');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, '# the test packages\nKilntest_Pure  # any spelling of the name\n');
    try {
      await withServer({ args: ['--package-index', index.url, '--allow-packages', file] }, async (kiln) => {
        const sid = await newSession(kiln.client);
        const ok = await install(kiln.client, sid, ['kilntest.pure==1.0']);
        assert.equal(ok.isError, false, resultText(ok));
        const no = await install(kiln.client, sid, ['kilntest-native==1.0']);
        assert.match(resultText(no), /'kilntest-native' is not in the allowed packages/);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a hibernated session keeps its packages: the restored one imports them', opts, async () => {
    await withServer({ args: serverArgs(['--idle-hibernate', '1']) }, async (kiln) => {
      const sid = await newSession(kiln.client);
      const r = await install(kiln.client, sid, ['kilntest-native==1.0']);
      assert.equal(r.isError, false, resultText(r));
      let state;
      const slept = await pollUntil(async () => {
        const list = await callTool(kiln.client, 'list_sessions', {});
        state = list.structuredContent.sessions.find((s) => s.session_id === sid)?.state;
        return state === 'hibernated';
      }, 30_000, 100);
      assert.ok(slept, `not hibernated: ${state}`);
      const sc = await run(kiln.client, 'import kilntest_native\n(kilntest_native.add(20, 22), kept)', { session_id: sid });
      assert.equal(sc.status, 'ok', dump(sc));
      assert.equal(sc.result, "(42, 'still here')", dump(sc));
    });
  });

  test('an install past --install-timeout is stopped and says so; the next one runs', opts, async () => {
    // An index that accepts connections and never answers.
    const held = [];
    const silent = createServer((sock) => held.push(sock));
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${silent.address().port}/simple`;
    try {
      await withServer({ args: ['--package-index', url, '--install-timeout', '1'] }, async (kiln) => {
        const sid = await newSession(kiln.client);
        const [slow, next] = await Promise.all([
          install(kiln.client, sid, ['kilntest-pure==1.0']),
          install(kiln.client, sid, ['kilntest-native==1.0']),
        ]);
        assert.equal(slow.isError, true, resultText(slow));
        assert.match(resultText(slow), /took longer than --install-timeout \(1 s\) and was stopped/);
        // Queued behind it, and stopped the same way: not stuck.
        assert.match(resultText(next), /--install-timeout/);
        assert.ok(held.length >= 1, 'pip reached the index through the proxy');
        const sc = await run(kiln.client, 'kept', { session_id: sid });
        assert.equal(sc.result, "'still here'", dump(sc));
      });
    } finally {
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  test('a session closed during its install gets no packages, and the reply says why', opts, async () => {
    await withServer({ args: serverArgs() }, async (kiln) => {
      const sid = await newSession(kiln.client);
      const pending = install(kiln.client, sid, ['kilntest-native==1.0']);
      await callTool(kiln.client, 'close_session', { session_id: sid });
      const r = await pending;
      assert.equal(r.isError, true, resultText(r));
      assert.match(resultText(r), /the session was closed during the install/);
      assert.equal(existsSync(join(kiln.home, 'packages', 'sessions', sid)), false);
    });
  });

  test('a closed session takes its packages directory with it', opts, async () => {
    await withServer({ args: serverArgs() }, async (kiln) => {
      const sid = await newSession(kiln.client);
      const r = await install(kiln.client, sid, ['kilntest-pure==1.0']);
      assert.equal(r.isError, false, resultText(r));
      const dir = join(kiln.home, 'packages', 'sessions', sid);
      assert.ok(readdirSync(dir).includes('kilntest_pure'), readdirSync(dir).join(' '));
      await callTool(kiln.client, 'close_session', { session_id: sid });
      assert.equal(existsSync(dir), false);
      // The cache keeps the files for the next session.
      const cache = join(kiln.home, 'packages', 'cache');
      assert.equal(readdirSync(cache).length, 1);
      assert.ok(statSync(join(cache, readdirSync(cache)[0], 'kilntest_pure')).isDirectory());
    });
  });
});

describe('install_packages on the daemon', () => {
  test('a session that took the daemon\'s spare worker sees its packages at once', opts, async () => {
    // The spare was jailed with a packages directory of its own, renamed
    // to the session's when the session took it: what is installed for
    // the session must appear in that worker.
    const xdg = mkdtempSync(join(tmpdir(), 'kiln-xdg-'));
    const env = { XDG_RUNTIME_DIR: xdg, KILN_DAEMON_IDLE: '30' };
    try {
      await withServer({ args: serverArgs(['--daemon', '--spares', '0']), env }, async (kiln) => {
        const first = await sessionPid(kiln.client, await newSession(kiln.client));
        const daemon = hostPidsWithArg(`${xdg}/kiln/daemon-`)[0];
        assert.ok(daemon, 'no daemon was started');
        const spares = () => childrenOf(daemon).filter((p) => commOf(p) === 'kiln-init' && p !== first);
        assert.ok(await pollUntil(() => spares().length === 1, 10_000), `no spare: ${spares()}`);
        const [spare] = spares();
        const sid = await newSession(kiln.client);
        // No worker was forked for it: it has the spare.
        assert.equal(await sessionPid(kiln.client, sid), spare);
        const r = await install(kiln.client, sid, ['kilntest-pure==1.0']);
        assert.equal(r.isError, false, resultText(r));
        const sc = await run(kiln.client, 'import kilntest_pure\n(kilntest_pure.VALUE, kept)', { session_id: sid });
        assert.equal(sc.status, 'ok', dump(sc));
        assert.equal(sc.result, "(42, 'still here')");
        assert.equal(sc.state_lost, false);
        assert.equal(readdirSync(join(kiln.home, 'packages', 'sessions')).filter((d) => d.startsWith('spare-')).length,
          1, 'the next spare has its own directory');
      });
    } finally {
      const pid = hostPidsWithArg(`${xdg}/kiln/daemon-`)[0];
      if (pid) process.kill(pid, 'SIGKILL');
      rmSync(xdg, { recursive: true, force: true });
    }
  });
});

describe('/metrics counts installs and shell commands', () => {
  test('installed by pip, linked from the cache, failed; commands by outcome', { timeout: 3 * TEST_TIMEOUT }, async () => {
    const kiln = await startHttp({ args: [...serverArgs(), '--metrics-public'] });
    try {
      await kiln.ready();
      const client = await kiln.connect();
      const a = await newSession(client);
      const b = await newSession(client);
      assert.equal((await install(client, a, ['kilntest-pure==1.0'])).isError, false);
      const cached = await install(client, b, ['kilntest-pure==1.0']);
      assert.equal(cached.structuredContent.cached, true, resultText(cached));
      // A version the index does not have: pip fails.
      assert.equal((await install(client, a, ['kilntest-pure==9.9'])).isError, true);
      const ok = await callTool(client, 'run_shell', { session_id: a, command: 'true' });
      assert.equal(ok.structuredContent.exit_code, 0, dump(ok));
      const bad = await callTool(client, 'run_shell', { session_id: a, command: 'exit 3' });
      assert.equal(bad.structuredContent.exit_code, 3, dump(bad));
      const body = (await raw(kiln, { method: 'GET', path: '/metrics' })).body;
      const value = (line) => {
        const m = new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(body);
        assert.ok(m, `${line} in\n${body}`);
        return Number(m[1]);
      };
      assert.equal(value('kiln_package_installs_total{outcome="installed"}'), 1);
      assert.equal(value('kiln_package_installs_total{outcome="cached"}'), 1);
      assert.equal(value('kiln_package_installs_total{outcome="failed"}'), 1);
      assert.equal(value('kiln_package_installs_total{outcome="cancelled"}'), 0);
      assert.equal(value('kiln_commands_total{outcome="ok"}'), 1);
      assert.equal(value('kiln_commands_total{outcome="error"}'), 1);
      // The commands are not cells: only the two sessions' first cells are.
      assert.equal(value('kiln_cells_total{outcome="ok"}'), 2);

      // Cancelled while pip runs: the installer goes, the session gets
      // nothing, the count says so, and the next install is served.
      const installers = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').includes('__install');
        } catch {
          return false;
        }
      });
      const abort = new AbortController();
      const pending = client.callTool({ name: 'install_packages', arguments: { session_id: b, packages: ['kilntest-dep==1.0'] } },
        undefined, { signal: abort.signal, timeout: TEST_TIMEOUT });
      assert.ok(await pollUntil(() => installers().length > 0, 20_000, 20), 'the installer never started');
      abort.abort();
      await assert.rejects(pending);
      assert.ok(await pollUntil(() => installers().length === 0, 20_000, 50), `installers left: ${installers()}`);
      const after = (await raw(kiln, { method: 'GET', path: '/metrics' })).body;
      assert.match(after, /^kiln_package_installs_total\{outcome="cancelled"\} 1$/m);
      const gone = await run(client, 'import importlib.util\nimportlib.util.find_spec("kilntest_dep") is None', { session_id: b });
      assert.equal(gone.result, 'True', dump(gone));
      const next = await install(client, b, ['kilntest-dep==1.0']);
      assert.equal(next.isError, false, resultText(next));
    } finally {
      await kiln.close();
    }
  });
});

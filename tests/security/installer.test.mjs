// The installer's jail (kernel/pkg/installer.c): pip runs outside the
// session's jail but in one of its own, and its only way out is kiln's
// proxy to the package index.  Here pip is replaced by a hostile program
// (what a compromised pip or a malicious wheel would be if one ever ran
// code at install time): it tries to read a session's files, to write
// outside its target, to reach a service on the host directly and
// through the proxy, and reports what it got in its target directory.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { KILN_BIN, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { attack, unjailed, unprivileged, modeName } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** A TCP server on loopback that answers nothing and counts connections. */
function listener() {
  return new Promise((resolve) => {
    const state = { connections: 0 };
    const srv = createServer((sock) => {
      state.connections++;
      sock.end();
    });
    srv.listen(0, '127.0.0.1', () => {
      state.port = srv.address().port;
      state.close = () => new Promise((r) => srv.close(r));
      resolve(state);
    });
  });
}

function hostile({ secret, hostPort, allowedPort }) {
  return `#!/bin/bash
# Stands in for the venv's python: kiln runs it as "python -m pip install ...".
proxy=
prev=
for a in "$@"; do
  [ "$prev" = --proxy ] && proxy=$a
  prev=$a
done
port=\${proxy##*:}
out=/opt/packages/report.txt
{
  echo "uid=$(id -u)"
  echo "capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)"
  if cat '${secret}' >/dev/null 2>&1; then echo secret=read; else echo secret=hidden; fi
  if [ -e /etc/shadow ]; then echo shadow=visible; else echo shadow=absent; fi
  if touch /usr/kiln-installer-escape 2>/dev/null; then echo usr=written; else echo usr=refused; fi
  if (exec 3<>/dev/tcp/127.0.0.1/${hostPort}) 2>/dev/null; then echo direct=connected; else echo direct=unreachable; fi
  exec 4<>/dev/tcp/127.0.0.1/$port
  printf 'CONNECT 127.0.0.1:${hostPort} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&4
  read -r line <&4
  echo "proxy_other=\${line%$'\\r'}"
  exec 5<>/dev/tcp/127.0.0.1/$port
  printf 'CONNECT 127.0.0.1:${allowedPort} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&5
  read -r line <&5
  echo "proxy_index=\${line%$'\\r'}"
  echo done
} >"$out" 2>&1
exit 0
`;
}

describe(`the installer's jail (${modeName})`, () => {
  let dir;
  let report;
  let result;
  let host;
  let index;

  before(async () => {
    if (unjailed) return;
    host = await listener();
    index = await listener();
    dir = mkdtempSync(join(tmpdir(), 'kiln-installer-'));
    chmodSync(dir, 0o755);
    const secret = join(dir, 'home', 'sessions', 'abcdef0123456789', 'secret.txt');
    mkdirSync(join(dir, 'home', 'sessions', 'abcdef0123456789'), { recursive: true });
    writeFileSync(secret, 'the session\'s data');
    const fake = join(dir, 'fake');
    mkdirSync(fake);
    chmodSync(fake, 0o755);
    writeFileSync(join(fake, 'python'), hostile({ secret, hostPort: host.port, allowedPort: index.port }), { mode: 0o755 });
    const target = join(dir, 'target');
    mkdirSync(target);
    if (!unprivileged) chownSync(target, 65534, 65534);
    mkdirSync(join(dir, 'root'));
    writeFileSync(join(dir, 'constraints.txt'), '');
    const args = [
      '__install', '--python', join(fake, 'python'), '--index', `http://127.0.0.1:${index.port}/simple`,
      '--target', target, '--root', join(dir, 'root'), '--constraints', join(dir, 'constraints.txt'),
      '--max-bytes', String(1 << 20), '--allow', `127.0.0.1:${index.port}`, '--expose', fake,
    ];
    if (unprivileged) args.push('--userns', `${process.getuid()}:${process.getgid()}`);
    args.push('--', 'anything==1.0');
    result = spawnSync(KILN_BIN, args, { encoding: 'utf8', timeout: 30_000 });
    const file = join(target, 'report.txt');
    report = existsSync(file) ? Object.fromEntries(readFileSync(file, 'utf8').trim().split('\n')
      .filter((l) => l.includes('=') || l === 'done').map((l) => (l === 'done' ? ['done', true] : l.split(/=(.*)/s).slice(0, 2)))) : null;
  });

  after(async () => {
    await host?.close();
    await index?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const skip = unjailed ? 'the installer always jails itself; --insecure-no-sandbox turns install_packages off' : undefined;
  const why = () => `installer: status ${result?.status}, stderr ${result?.stderr}; report ${JSON.stringify(report)}`;

  attack(test, 'the hostile program ran, as nobody, with no capabilities', opts, () => {
    assert.equal(result.status, 0, why());
    assert.equal(report?.done, true, why());
    assert.equal(report.uid, String(unprivileged ? process.getuid() : 65534), why());
    assert.equal(report.capeff, '0000000000000000', why());
  }, { skip });

  attack(test, 'it cannot read a session\'s files or the host\'s secrets', opts, () => {
    assert.equal(report?.secret, 'hidden', why());
    assert.equal(report?.shadow, 'absent', why());
  }, { skip });

  attack(test, 'it cannot write outside its target', opts, () => {
    assert.equal(report?.usr, 'refused', why());
    assert.equal(existsSync('/usr/kiln-installer-escape'), false);
  }, { skip });

  attack(test, 'it reaches no host service directly, and the proxy only the index', opts, () => {
    assert.equal(report?.direct, 'unreachable', why());
    assert.match(report?.proxy_other ?? '', /^HTTP\/1\.1 403/, why());
    assert.match(report?.proxy_index ?? '', /^HTTP\/1\.1 200/, why());
    // The one connection the host's service saw is none: the proxy refused it.
    assert.equal(host.connections, 0, why());
    assert.match(result.stderr, new RegExp(`refused a connection to 127\\.0\\.0\\.1:${host.port}`), why());
  }, { skip });
});

// Drives a kiln running in a container (tests/container/run starts it) over
// Streamable HTTP with the MCP SDK's client, as a deployed client would:
// state across calls, a figure, a timeout, a crash, then the core attacks
// of the security battery, each followed by a check that a bystander
// session is unharmed.
//
//   node tests/container/driver.mjs URL TOKEN GATEWAY CONTAINER
//
// GATEWAY is an address of the host as the container's network sees it:
// the container CONTAINER (podman's name) reaches it, a session must not.  Prints one line a check
// ("ok - ..." or "not ok - ..."), exits 1 if any failed.

import assert from 'node:assert/strict';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

// The SDK is installed once, for tests/integration.
import { Client } from '../integration/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js';
import { StreamableHTTPClientTransport } from '../integration/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js';

const [url, token, gateway, container] = process.argv.slice(2);
if (!url || !token || !gateway || !container) {
  console.error('usage: driver.mjs URL TOKEN GATEWAY CONTAINER');
  process.exit(2);
}
const REQUEST_TIMEOUT = 60_000;

async function connect(bearer) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${bearer}` } },
  });
  const client = new Client({ name: 'kiln-container-test', version: '0.0.0' });
  await client.connect(transport);
  return client;
}

const client = await connect(token);

async function runFull(code, opts = {}) {
  return client.callTool({ name: 'run_python', arguments: { code, ...opts } }, undefined, {
    timeout: REQUEST_TIMEOUT,
  });
}
async function run(code, opts = {}) {
  const result = await runFull(code, opts);
  assert.ok(result.structuredContent, `no structuredContent: ${dump(result)}`);
  return result.structuredContent;
}
function dump(v) {
  const text = JSON.stringify(v);
  return text.length > 2000 ? `${text.slice(0, 2000)}...` : text;
}

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (err) {
    failures += 1;
    console.log(`not ok - ${name}\n  ${String(err.message).split('\n').join('\n  ')}`);
  }
}

// A session that every attack must leave as it was.
const bystander = await run('bystander = "still here"');
async function unharmed() {
  const sc = await run('bystander', { session_id: bystander.session_id });
  assert.equal(sc.status, 'ok', dump(sc));
  assert.equal(sc.result, "'still here'", dump(sc));
}

// --- what a client does --------------------------------------------------
await check('a request without the token is refused with 401', async () => {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  assert.equal(r.status, 401);
});

await check('a session keeps its variables from one call to the next', async () => {
  const first = await run('x = 41');
  assert.equal(first.status, 'ok', dump(first));
  const second = await run('x + 1', { session_id: first.session_id });
  assert.equal(second.result, '42', dump(second));
});

await check('a matplotlib figure comes back as a PNG image', async () => {
  const result = await runFull(
    'import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title("in a container")',
  );
  assert.equal(result.structuredContent?.status, 'ok', dump(result.structuredContent));
  const images = result.content.filter((c) => c.type === 'image');
  assert.equal(images.length, 1, dump(result.content.map((c) => c.type)));
  assert.equal(images[0].mimeType, 'image/png');
  const png = Buffer.from(images[0].data, 'base64');
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
});

await check('a cell past its timeout is interrupted and its session keeps its variables', async () => {
  const first = await run('y = 7');
  const sc = await run('import time\nwhile True: time.sleep(0.01)', {
    session_id: first.session_id,
    timeout_s: 1,
  });
  assert.equal(sc.status, 'interrupted', dump(sc));
  assert.equal(sc.error?.type, 'KeyboardInterrupt', dump(sc));
  const after = await run('y', { session_id: first.session_id });
  assert.equal(after.result, '7', dump(after));
});

await check('a crashed worker is reported, and the next call says the state was lost', async () => {
  const first = await run('z = 1');
  const sc = await run('import os\nos.kill(os.getpid(), 9)', { session_id: first.session_id });
  assert.equal(sc.status, 'crashed', dump(sc));
  const next = await run('"z" in globals()', { session_id: first.session_id });
  assert.equal(next.state_lost, true, dump(next));
  assert.equal(next.result, 'False', dump(next));
  await unharmed();
});

// --- the core attacks, as cells --------------------------------------------
/** A cell that defines _try(f), returning "ok:<repr>" or "Type:errno-name". */
function probe(body) {
  return [
    'import errno as _e',
    'def _try(f):',
    '    try:',
    '        return "ok:" + repr(f())',
    '    except BaseException as x:',
    '        n = getattr(x, "errno", None)',
    '        return type(x).__name__ + ":" + (_e.errorcode.get(n, str(n)) if n else "")',
    body,
  ].join('\n');
}
const SYSCALL = [
  'import ctypes, errno',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'libc.syscall.restype = ctypes.c_long',
  'def sc(nr, *a):',
  '    r = libc.syscall(nr, *a)',
  '    return f"{r}:{errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}"',
].join('\n');
async function expectOutcome(name, body, expected) {
  await check(name, async () => {
    const sc = await run(probe(body));
    assert.equal(sc.status, 'ok', dump(sc));
    assert.equal(sc.result, expected, dump(sc));
    await unharmed();
  });
}

// The container's own files are the host a session must not see: the
// bearer tokens above all, and KILN_HOME, where every session's files are.
await expectOutcome('the token file of the container cannot be read',
  '_try(lambda: open("/run/secrets/kiln-tokens").read())', "'FileNotFoundError:ENOENT'");
await expectOutcome("KILN_HOME, with the other sessions' files, cannot be listed",
  'import os\n_try(lambda: os.listdir("/var/lib/kiln"))', "'FileNotFoundError:ENOENT'");
await expectOutcome('the container\'s files cannot be reached with ..',
  '_try(lambda: open("/work/../../../../run/secrets/kiln-tokens").read())', "'FileNotFoundError:ENOENT'");

await check('the network the container has is not the session\'s', async () => {
  let connections = 0;
  const listener = net.createServer((s) => {
    connections += 1;
    s.destroy();
  });
  await new Promise((resolve) => listener.listen(0, '0.0.0.0', resolve));
  const { port } = listener.address();
  try {
    // The container itself gets through, or this check would prove nothing.
    await promisify(execFile)('podman', ['exec', container, 'python3', '-c',
      `import socket; socket.create_connection((${JSON.stringify(gateway)}, ${port}), timeout=3)`]);
    for (let i = 0; i < 50 && connections === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(connections, 1, 'the container could not reach the listener');
    const sc = await run(probe(
      `import socket\n(_try(lambda: socket.create_connection((${JSON.stringify(gateway)}, ${port}), timeout=3)), ` +
        '_try(lambda: socket.getaddrinfo("deb.debian.org", 80)))',
    ));
    assert.equal(sc.status, 'ok', dump(sc));
    assert.match(sc.result, /^\('OSError:ENETUNREACH', 'gaierror:/, dump(sc));
    assert.equal(connections, 1, 'a session reached the listener');
  } finally {
    listener.close();
  }
  await unharmed();
});

// PTRACE_SEIZE (0x4206) on the session's init, PTRACE_ATTACH (16) on a
// child of the cell: the worker's filter refuses both.
await expectOutcome('ptrace is refused, on the init and on a child of the cell',
  [
    SYSCALL,
    'import os, time',
    'pid = os.fork()',
    'if pid == 0:',
    '    time.sleep(5); os._exit(0)',
    'init = sc(101, 0x4206, 1, 0, 0)',
    'if init.startswith("0:"): sc(101, 17, 1, 0, 0)',
    'r = (init, sc(101, 16, pid, 0, 0))',
    'os.kill(pid, 9); os.waitpid(pid, 0)',
    'r',
  ].join('\n'),
  "('-1:EPERM', '-1:EPERM')");

await expectOutcome('a cell has no capabilities, no-new-privs and the seccomp filter',
  'st = dict(l.split(":\\t") for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)\n' +
    '[st[k] for k in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")]',
  "['0000000000000000', '0000000000000000', '1', '2']");

await expectOutcome('mount and unshare are refused inside a session',
  `${SYSCALL}\n(sc(165, b"none", b"/tmp", b"tmpfs", 0, None), sc(272, 0x10000000))`,
  "('-1:EPERM', '-1:EPERM')");

await client.close();
process.exit(failures ? 1 : 0);

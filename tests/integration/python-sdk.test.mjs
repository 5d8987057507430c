// kiln driven through the official MCP Python SDK, at the newest release
// and at 1.9.4 (protocol 2025-03-26), each from its own virtual environment
// made by tests/clients/setup.sh: over stdio, and over Streamable HTTP to a
// `kiln serve --http` with a bearer token.  The client side is
// tests/clients/sdk_client.py: one run per scenario (over stdio each with a
// kiln of its own, over HTTP each an MCP session of its own), printing what
// the SDK saw and what crossed the wire.
//
// A missing environment fails these tests (tests/run.sh makes both before
// this suite); KILN_SKIP_PYTHON_SDK=1 skips them instead.

import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { KILN_BIN } from './helpers.mjs';
import { useHttpKiln } from './clients-http.mjs';

const CLIENTS = fileURLToPath(new URL('../clients/', import.meta.url));
const DRIVER = join(CLIENTS, 'sdk_client.py');

/** One driver run: starting Python and kiln, and the five-second cells, on a loaded machine. */
const DRIVER_TIMEOUT = 300_000;
const HOOK_TIMEOUT = DRIVER_TIMEOUT + 10_000;

/** The protocol versions kiln speaks, newest first. */
const KILN_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];

const TOOLS = ['run_python', 'run_shell', 'list_sessions', 'close_session', 'upload_file', 'list_files', 'read_file', 'install_packages'];

/**
 * The SDK versions under test.  `modern`: the SDK speaks 2025-06-18 or
 * later, so tools carry outputSchema and titles and replies carry
 * structuredContent and resource_link blocks.  `protocol`: the version the
 * pinned release offers in initialize.
 */
const SDKS = [
  { venv: '.venv-current', requirements: 'requirements-current.txt', modern: true, protocol: '2025-11-25' },
  { venv: '.venv-1.9', requirements: 'requirements-1.9.txt', modern: false, protocol: '2025-03-26' },
];

const SKIP =
  process.env.KILN_SKIP_PYTHON_SDK === '1'
    ? 'KILN_SKIP_PYTHON_SDK=1: the MCP Python SDK clients are not driven in this run'
    : false;

const SETUP_HINT =
  'run `tests/clients/setup.sh /path/to/python3.12` (tests/run.sh does, before this suite), ' +
  'or set KILN_SKIP_PYTHON_SDK=1 to skip these tests';

/** The mcp version the requirements file pins, for the suite's name. */
function pinned(sdk) {
  const text = readFileSync(join(CLIENTS, sdk.requirements), 'utf8');
  return text.match(/^mcp==(\S+)/m)?.[1] ?? '?';
}

/** The environment's Python, once it is known to be made from today's requirements file. */
function installedPython(sdk) {
  const venv = join(CLIENTS, sdk.venv);
  const python = join(venv, 'bin', 'python3');
  const where = `tests/clients/${sdk.venv}`;
  if (!existsSync(python)) {
    throw new Error(`${where} does not exist: ${SETUP_HINT}`);
  }
  let stamp = '';
  try {
    stamp = readFileSync(join(venv, '.kiln-requirements'), 'utf8').trim();
  } catch {
    throw new Error(`${where} was never finished (no .kiln-requirements stamp): ${SETUP_HINT}`);
  }
  const hash = createHash('sha256').update(readFileSync(join(CLIENTS, sdk.requirements))).digest('hex');
  if (!stamp.endsWith(` ${hash}`)) {
    throw new Error(`${where} was made from another version of ${sdk.requirements}: ${SETUP_HINT}`);
  }
  return python;
}

/**
 * Runs one scenario through the driver: over stdio with a kiln of its own,
 * or, given HTTP = { url, token? }, over Streamable HTTP to the kiln at url.
 * Resolves with { out, code, stderr }, whatever the driver reported, once it
 * printed its JSON; rejects when it printed none.
 */
function run(sdk, scenario, http) {
  const python = installedPython(sdk);
  const env = { ...process.env, KILN_BIN };
  delete env.KILN_HTTP_TOKEN;
  if (http?.token !== undefined) env.KILN_HTTP_TOKEN = http.token;
  const args = http ? [DRIVER, '--url', http.url, scenario] : [DRIVER, scenario];
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), DRIVER_TIMEOUT);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      try {
        resolve({ out: JSON.parse(stdout), code: code ?? signal, stderr });
      } catch {
        reject(
          new Error(
            `the driver printed no JSON (exit ${code ?? signal}); stdout: ${stdout.slice(-2000)}; stderr: ${stderr.slice(-4000)}`,
          ),
        );
      }
    });
  });
}

/** Runs one scenario as run() does; resolves with its JSON output (and `stderr`), rejects if the client failed. */
async function drive(sdk, scenario, http) {
  const { out, stderr } = await run(sdk, scenario, http);
  if (out.failure) {
    throw new Error(
      `the client failed outside any call: ${out.failure.error}: ${out.failure.message}; stderr: ${stderr.slice(-4000)}`,
    );
  }
  return { ...out, stderr };
}

/**
 * The driver's output for SCENARIO, run once before the tests of the
 * enclosing suite: a handle whose `out` is set by then.  HTTP, if given, is
 * called then for the { url, token } to drive (see run()).
 */
function useScenario(sdk, scenario, http) {
  const handle = {};
  before(async () => {
    handle.out = await drive(sdk, scenario, http?.());
  }, { timeout: HOOK_TIMEOUT });
  return handle;
}

/** VALUE as JSON for an assertion message, base64 payloads shortened. */
function show(value) {
  const text = JSON.stringify(
    value,
    (key, v) => (key === 'data' && typeof v === 'string' && v.length > 40 ? `${v.slice(0, 40)}...` : v),
    2,
  );
  return text && text.length > 6000 ? `${text.slice(0, 6000)}...` : text;
}

/** All text blocks of a tools/call result, joined. */
function textOf(result) {
  return (result?.content ?? [])
    .filter((block) => block.type === 'text')
    .map((block) => block.text)
    .join('\n');
}

/** Asserts that a call outcome of the driver is a reply the SDK accepted, not an exception or a tool error. */
function assertAnswered(outcome) {
  assert.ok(outcome, 'the call was not made');
  assert.equal(outcome.error, undefined, `the SDK raised ${outcome.error}: ${outcome.message}\nkiln sent: ${show(outcome.raw)}`);
  assert.notEqual(outcome.result?.isError, true, show(outcome.result));
}

for (const sdk of SDKS) {
  describe(`MCP Python SDK mcp==${pinned(sdk)} (tests/clients/${sdk.venv})`, { skip: SKIP }, () => {
    describe('initialize', () => {
      const s = useScenario(sdk, 'initialize');

      test(`the SDK offers ${sdk.protocol}, a version kiln speaks`, () => {
        assert.equal(s.out.offered_protocol_version, sdk.protocol, show(s.out));
        assert.ok(KILN_VERSIONS.includes(s.out.offered_protocol_version), show(s.out));
      });

      test('kiln answers with exactly the version the SDK offered', () => {
        assert.equal(s.out.raw_protocolVersion, s.out.offered_protocol_version, show(s.out));
        assert.equal(s.out.protocolVersion, s.out.offered_protocol_version, show(s.out));
      });
    });

    describe('tools', () => {
      const s = useScenario(sdk, 'tools');
      const raw = (name) => s.out.raw_tools.find((tool) => tool.name === name);

      test(`tools/list names ${TOOLS.join(', ')}`, () => {
        const names = s.out.raw_tools.map((tool) => tool.name);
        for (const name of TOOLS) assert.ok(names.includes(name), `${name} missing from ${show(names)}`);
        assert.deepEqual(s.out.tools.map((tool) => tool.name), names, 'the SDK lost or reordered tools');
      });

      if (sdk.modern) {
        test('run_python has an outputSchema and a title', () => {
          const tool = s.out.tools.find((t) => t.name === 'run_python');
          assert.equal(tool?.outputSchema?.type, 'object', show(tool));
          assert.equal(typeof tool.title, 'string', show(tool));
        });
      } else {
        test('no tool carries outputSchema or title, which 2025-03-26 does not have', () => {
          for (const tool of s.out.raw_tools) {
            assert.ok(!('outputSchema' in tool), `${tool.name} has an outputSchema`);
            assert.ok(!('title' in tool), `${tool.name} has a title: ${JSON.stringify(tool.title)}`);
          }
        });
      }

      test('list_files and read_file are annotated readOnlyHint', () => {
        for (const name of ['list_files', 'read_file']) {
          assert.equal(raw(name)?.annotations?.readOnlyHint, true, `${name}: ${show(raw(name)?.annotations)}`);
        }
      });

      test('close_session is annotated destructiveHint', () => {
        assert.equal(raw('close_session')?.annotations?.destructiveHint, true, show(raw('close_session')?.annotations));
      });

      test('only install_packages reaches an open world (the package index): openWorldHint', () => {
        for (const tool of s.out.raw_tools) {
          assert.equal(tool.annotations?.openWorldHint, tool.name === 'install_packages', `${tool.name}: ${show(tool.annotations)}`);
        }
      });
    });

    describe('run', () => {
      const s = useScenario(sdk, 'run');

      test('run_python "x = 6*7\\nx" is answered without isError', () => {
        assertAnswered(s.out.first);
      });

      test('the first line of the reply\'s text starts with "[session " and names the session', () => {
        const line = s.out.first_line ?? '';
        assert.ok(line.startsWith('[session '), `first line: ${JSON.stringify(line)}`);
        assert.ok(s.out.text_session_id, `no session id in ${JSON.stringify(line)}`);
        if (sdk.modern) {
          const id = s.out.first.result?.structuredContent?.session_id;
          assert.ok(id && line.includes(id), `first line ${JSON.stringify(line)} does not name ${id}`);
        }
      });

      if (sdk.modern) {
        test('structuredContent carries the session_id and the result "42"', () => {
          const sc = s.out.first.result?.structuredContent;
          assert.equal(typeof sc?.session_id, 'string', show(s.out.first.result));
          assert.equal(sc.result, '42', show(sc));
        });
      }

      test('a second call with that session_id sees x: "x+1" gives 43', () => {
        assertAnswered(s.out.second);
        assert.ok(textOf(s.out.second.result).includes('43'), show(s.out.second.result));
      });
    });

    describe('files_and_figures', () => {
      const s = useScenario(sdk, 'files_and_figures');

      if (sdk.modern) {
        test('a cell that writes out.txt and draws 10 figures is answered', () => {
          assertAnswered(s.out.call);
        });

        test('the figures come back as image blocks', () => {
          const images = s.out.call.result.content.filter((block) => block.type === 'image');
          assert.ok(images.length >= 1, show(s.out.call.result.content));
        });

        test('the written file comes back as a resource_link to kiln://sessions/<id>/files/out.txt', () => {
          const id = s.out.call.result.structuredContent?.session_id;
          const links = s.out.call.result.content.filter((block) => block.type === 'resource_link');
          assert.ok(
            links.some((link) => link.uri === `kiln://sessions/${id}/files/out.txt`),
            show(s.out.call.result.content),
          );
        });
      } else {
        test('a reply with figures and a written file does not make the SDK raise', () => {
          assertAnswered(s.out.call);
        });

        test('the reply holds no resource_link block, which 2025-03-26 does not have', () => {
          const types = (s.out.call.raw?.content ?? []).map((block) => block.type);
          assert.ok(!types.includes('resource_link'), `content block types: ${show(types)}`);
        });

        test('the text names the file as kiln://sessions/<id>/files/out.txt', () => {
          const text = textOf(s.out.call.raw);
          const match = text.match(/kiln:\/\/sessions\/([A-Za-z0-9_-]+)\/files\/out\.txt/);
          assert.ok(match, `text: ${JSON.stringify(text)}`);
          if (s.out.text_session_id) assert.equal(match[1], s.out.text_session_id, text);
        });

        test('the reply has no structuredContent, which 2025-03-26 does not have', () => {
          assert.ok(s.out.call.raw, 'kiln sent no reply');
          assert.ok(!('structuredContent' in s.out.call.raw), show(Object.keys(s.out.call.raw)));
        });
      }
    });

    const streaming = [['progress', 'tick', 'print() from Python']];
    if (sdk.modern) streaming.push(['sys_print_c', 'c', 'write(2) from C while Python is blocked in usleep()']);
    for (const [scenario, word, how] of streaming) {
      describe(`${scenario}: output of a 5 s cell, by ${how}, streamed as progress`, () => {
        const s = useScenario(sdk, scenario);
        // The notifications for this call, in the order they crossed the pipe.
        const arrived = () => s.out.raw_progress.filter((p) => p.progressToken === s.out.progress_token);
        const early = () => arrived().filter((p) => p.t_ms < 0);
        // For the checks on each notification: none at all is a failure, not a pass.
        const someEarly = () => {
          assert.ok(early().length > 0, `no progress notification arrived before the reply: ${show(arrived())}`);
          return early();
        };

        test('the cell is answered', () => {
          assertAnswered(s.out.call);
        });

        test('at least 8 progress notifications arrive before the reply', () => {
          assert.ok(early().length >= 8, `arrived (t_ms relative to the reply): ${show(arrived())}`);
        });

        test('the first arrives while the cell still runs, at least 2 s before the reply', () => {
          assert.ok(someEarly()[0].t_ms <= -2000, show(arrived()));
        });

        test('progress strictly increases', () => {
          const values = someEarly().map((p) => p.progress);
          for (let i = 1; i < values.length; i += 1) {
            assert.ok(values[i] > values[i - 1], `progress values: ${show(values)}`);
          }
        });

        test("the SDK hands each of them to the call's progress callback", () => {
          assert.deepEqual(
            s.out.progress.map((p) => p.progress),
            someEarly().map((p) => p.progress),
            `delivered: ${show(s.out.progress)}\narrived: ${show(arrived())}`,
          );
        });

        test(`their messages carry the output as it was written, '${word} 0' to '${word} 9'`, () => {
          const messages = someEarly().map((p) => p.message ?? '').join('');
          assert.ok(messages.includes(`${word} 0`), `messages: ${JSON.stringify(messages)}`);
          assert.ok(messages.includes(`${word} 9`), `messages: ${JSON.stringify(messages)}`);
        });

        test('the reply still holds all ten lines', () => {
          const text = textOf(s.out.call.result);
          for (let i = 0; i < 10; i += 1) assert.ok(text.includes(`${word} ${i}`), `text: ${JSON.stringify(text)}`);
        });
      });
    }
  });
}

// ---------------------------------------------------------------------------
// The same SDKs over Streamable HTTP: one `kiln serve --http` per SDK with a
// bearer token, each scenario one MCP session of its own on it.
// ---------------------------------------------------------------------------

/** The first line of a raw tools/call result's text. */
const firstLine = (raw) => textOf(raw).split('\n', 1)[0];

/** The MCP sessions kiln's log says it opened so far. */
const sessionsOpened = (kiln) => (kiln.stderr().match(/MCP session \S+ opened/g) ?? []).length;

for (const sdk of SDKS) {
  describe(`MCP Python SDK mcp==${pinned(sdk)} over Streamable HTTP (kiln serve --http 127.0.0.1:0 --token-file)`, { skip: SKIP }, () => {
    const kiln = useHttpKiln();
    const http = () => ({ url: kiln.url, token: kiln.tokens[0] });

    describe('bearer token', () => {
      test('with a token from --token-file the SDK initializes, and kiln answers the version it offered', { timeout: HOOK_TIMEOUT }, async () => {
        const before = sessionsOpened(kiln);
        const out = await drive(sdk, 'initialize', http());
        assert.equal(out.transport, 'http', show(out));
        assert.equal(out.offered_protocol_version, sdk.protocol, show(out));
        assert.equal(out.raw_protocolVersion, sdk.protocol, show(out));
        assert.equal(sessionsOpened(kiln), before + 1, `kiln's log: ${kiln.stderr().slice(-2000)}`);
      });

      for (const [what, token] of [
        ['a token that is not in --token-file', () => `x${kiln.tokens[0]}`],
        ['no token', () => undefined],
      ]) {
        test(`with ${what} the SDK cannot initialize, and kiln opens no MCP session`, { timeout: HOOK_TIMEOUT }, async () => {
          const before = sessionsOpened(kiln);
          const { out, code, stderr } = await run(sdk, 'initialize', { url: kiln.url, token: token() });
          assert.ok(out.failure, `the client initialized: ${show(out)}`);
          assert.notEqual(code, 0, show(out));
          assert.equal(out.protocolVersion, undefined, show(out));
          // 1.x says why; 2.x reports the 401 as a generic error response.
          if (!sdk.modern) assert.match(out.failure.message, /401 Unauthorized/, `${show(out.failure)}\n${stderr.slice(-2000)}`);
          assert.equal(sessionsOpened(kiln), before, `kiln's log: ${kiln.stderr().slice(-2000)}`);
        });
      }
    });

    describe('tools', () => {
      const s = useScenario(sdk, 'tools', http);

      test(`tools/list names ${TOOLS.join(', ')}`, () => {
        const names = s.out.raw_tools.map((tool) => tool.name);
        for (const name of TOOLS) assert.ok(names.includes(name), `${name} missing from ${show(names)}`);
        assert.deepEqual(s.out.tools.map((tool) => tool.name), names, 'the SDK lost or reordered tools');
      });
    });

    describe('run_python keeps a session\'s state across calls', () => {
      const s = useScenario(sdk, 'run', http);

      test('"x = 6*7\\nx" is answered with 42 in a new session named on the first line', () => {
        assertAnswered(s.out.first);
        assert.ok(s.out.text_session_id, `first line: ${JSON.stringify(s.out.first_line)}`);
        assert.match(textOf(s.out.first.result), /\n42$/, show(s.out.first.result));
        if (sdk.modern) assert.equal(s.out.first.result.structuredContent?.result, '42', show(s.out.first.result));
      });

      test('a second call with that session_id sees x: "x+1" gives 43', () => {
        assertAnswered(s.out.second);
        assert.ok(firstLine(s.out.second.raw).startsWith(`[session ${s.out.text_session_id} `), show(s.out.second.raw));
        assert.match(textOf(s.out.second.result), /\n43$/, show(s.out.second.result));
      });
    });

    describe('a matplotlib figure', () => {
      const s = useScenario(sdk, 'figure', http);

      test('a 4×3 in figure at 100 dpi comes back as one image block: a valid 400×300 PNG', () => {
        assertAnswered(s.out.call);
        assert.equal(s.out.images.length, 1, show(s.out.images));
        const [image] = s.out.images;
        assert.equal(image.mimeType, 'image/png', show(image));
        assert.ok(image.valid, `not a valid PNG: ${image.problem}`);
        assert.deepEqual([image.width, image.height], [400, 300], show(image));
      });

      test('resources/read of the figure\'s artifact gives the same PNG', () => {
        assert.equal(s.out.artifact_uris.length, 1, show(s.out.artifact_uris));
        assert.match(s.out.artifact_uris[0], new RegExp(`^kiln://sessions/${s.out.session_id}/artifacts/`));
        const r = s.out.resource;
        assert.equal(r?.error ?? null, null, show(r));
        assert.equal(r.mimeType, 'image/png', show(r));
        assert.ok(r.png.valid, `not a valid PNG: ${r.png.problem}`);
        assert.deepEqual([r.png.width, r.png.height], [400, 300], show(r));
        assert.ok(r.same_as_image, 'the resource differs from the image block');
      });
    });

    describe('a cell past its timeout_s', () => {
      const s = useScenario(sdk, 'timeout', http);

      test('is interrupted at its 1 s deadline, and the reply says so as an error', () => {
        const r = s.out.interrupted;
        assert.equal(r?.error, undefined, `the SDK raised ${r?.error}: ${r?.message}`);
        assert.equal(r.result.isError, true, show(r.result));
        assert.match(firstLine(r.raw), /· interrupted\]$/, show(r.raw));
        assert.match(textOf(r.raw), /KeyboardInterrupt/, show(r.raw));
        assert.ok(r.seconds >= 1 && r.seconds < 10, `answered after ${r.seconds} s`);
        if (sdk.modern) assert.equal(r.result.structuredContent?.status, 'interrupted', show(r.result));
      });

      test('the session survives with its state: x is the 2 the interrupted cell set', () => {
        assertAnswered(s.out.after);
        assert.ok(firstLine(s.out.after.raw).startsWith(`[session ${s.out.session_id} `), show(s.out.after.raw));
        assert.match(textOf(s.out.after.result), /\n2$/, show(s.out.after.result));
      });
    });

    describe('a cell that ends its worker with os._exit(3)', () => {
      const s = useScenario(sdk, 'crash', http);

      test('is reported as a crash, exit code 3, as an error', () => {
        const r = s.out.crash;
        assert.equal(r?.error, undefined, `the SDK raised ${r?.error}: ${r?.message}`);
        assert.equal(r.result.isError, true, show(r.result));
        assert.match(firstLine(r.raw), /· crashed\]$/, show(r.raw));
        assert.match(textOf(r.raw), /exited with code 3/, show(r.raw));
        if (sdk.modern) assert.equal(r.result.structuredContent?.status, 'crashed', show(r.result));
      });

      test('the next call in that session runs in a fresh interpreter and says the state was lost', () => {
        assertAnswered(s.out.after);
        assert.ok(firstLine(s.out.after.raw).startsWith(`[session ${s.out.session_id} `), show(s.out.after.raw));
        assert.match(firstLine(s.out.after.raw), /state lost/, show(s.out.after.raw));
        assert.match(textOf(s.out.after.result), /\nFalse$/, show(s.out.after.result));
        if (sdk.modern) assert.equal(s.out.after.result.structuredContent?.state_lost, true, show(s.out.after.result));
      });
    });

    describe('list_sessions and close_session', () => {
      const s = useScenario(sdk, 'sessions', http);

      test('list_sessions lists the session this client made, and only it', () => {
        assertAnswered(s.out.listed);
        const text = textOf(s.out.listed.raw);
        assert.deepEqual(text.trim().split('\n').map((line) => line.split(/\s+/)[0]), [s.out.session_id], text);
        if (sdk.modern) {
          const ids = s.out.listed.result.structuredContent.sessions.map((x) => x.session_id);
          assert.deepEqual(ids, [s.out.session_id], show(s.out.listed.result));
        }
      });

      test('close_session closes it: list_sessions no longer has it', () => {
        assertAnswered(s.out.closed);
        assert.match(textOf(s.out.closed.raw), new RegExp(`${s.out.session_id} closed`), show(s.out.closed.raw));
        assertAnswered(s.out.listed_after);
        assert.ok(!textOf(s.out.listed_after.raw).includes(s.out.session_id), show(s.out.listed_after.raw));
      });

      test('run_python with the closed session_id is refused as an unknown session', () => {
        const r = s.out.run_after;
        assert.equal(r?.error, undefined, `the SDK raised ${r?.error}: ${r?.message}`);
        assert.equal(r.result.isError, true, show(r.result));
        assert.match(textOf(r.raw), /unknown session/, show(r.raw));
      });
    });

    describe('upload_file, list_files, read_file', () => {
      const s = useScenario(sdk, 'files', http);

      test('upload_file without a session_id writes the text into a new session', () => {
        assertAnswered(s.out.upload_text);
        assert.ok(s.out.session_id, show(s.out.upload_text));
        assert.match(textOf(s.out.upload_text.raw), /notes\/a\.txt/, show(s.out.upload_text.raw));
      });

      test('upload_file with encoding base64 writes all 256 byte values', () => {
        assertAnswered(s.out.upload_binary);
      });

      test('list_files lists both files with their sizes', () => {
        assertAnswered(s.out.listed);
        const text = textOf(s.out.listed.raw);
        assert.match(text, /^notes\/a\.txt {2}27 bytes/m, text);
        assert.match(text, /^data\/bytes\.bin {2}256 bytes/m, text);
      });

      test('read_file gives back the text, and the binary as a blob of the same bytes', () => {
        assertAnswered(s.out.read_text);
        assert.equal(textOf(s.out.read_text.raw), 'first line\nsecond line, é\n');
        assertAnswered(s.out.read_binary);
        assert.ok(s.out.read_binary_same, show(s.out.read_binary.raw));
      });

      test('a cell reads the uploaded files, and read_file reads what it wrote', () => {
        assertAnswered(s.out.cell);
        assert.match(textOf(s.out.cell.result), /\(True, True\)/, show(s.out.cell.result));
        assertAnswered(s.out.read_written);
        assert.equal(textOf(s.out.read_written.raw), 'FIRST LINE\nSECOND LINE, É\n');
      });
    });

    describe('output of a 1.25 s cell streamed as progress', () => {
      const s = useScenario(sdk, 'short_progress', http);
      const arrived = () => s.out.raw_progress.filter((p) => p.progressToken === s.out.progress_token);
      const early = () => arrived().filter((p) => p.t_ms < 0);

      test('the cell is answered with all five lines', () => {
        assertAnswered(s.out.call);
        const text = textOf(s.out.call.result);
        for (let i = 0; i < 5; i += 1) assert.ok(text.includes(`tick ${i}`), `text: ${JSON.stringify(text)}`);
      });

      // Five lines 0.25 s apart: on a loaded machine two may share a notification.
      test('at least 3 progress notifications arrive before the reply, the first at least 0.5 s before it', () => {
        assert.ok(early().length >= 3, `arrived (t_ms relative to the reply): ${show(arrived())}`);
        assert.ok(early()[0].t_ms <= -500, show(arrived()));
      });

      test("progress increases, the messages carry 'tick 0' to 'tick 4', and the SDK hands each to the callback", () => {
        const values = early().map((p) => p.progress);
        for (let i = 1; i < values.length; i += 1) assert.ok(values[i] > values[i - 1], `progress values: ${show(values)}`);
        const messages = early().map((p) => p.message ?? '').join('');
        for (let i = 0; i < 5; i += 1) assert.ok(messages.includes(`tick ${i}`), `messages: ${JSON.stringify(messages)}`);
        assert.deepEqual(s.out.progress.map((p) => p.progress), values, show(s.out.progress));
      });
    });
  });
}

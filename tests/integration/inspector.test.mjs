// kiln driven through the MCP Inspector's command-line mode
// (`inspector --cli kiln serve --method ...`, and `inspector --cli URL
// --transport http ...` against `kiln serve --http`), the tool people reach
// for to poke at a server by hand.  The Inspector needs Node 22, which npm ci
// installs here as the `node` package (package.json's devDependencies);
// the suite itself may run on an older Node.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { KILN_BIN, TEST_TIMEOUT } from './helpers.mjs';
import { useHttpKiln } from './clients-http.mjs';

const MODULES = fileURLToPath(new URL('./node_modules/', import.meta.url));
const NODE = join(MODULES, 'node', 'bin', 'node');
const INSPECTOR_DIR = join(MODULES, '@modelcontextprotocol', 'inspector');

/** The Inspector's package.json, or a failure that says how to install it. */
function inspectorPackage() {
  try {
    return JSON.parse(readFileSync(join(INSPECTOR_DIR, 'package.json'), 'utf8'));
  } catch {
    throw new Error('the MCP Inspector is not installed: run `npm ci` in tests/integration');
  }
}

/**
 * Runs the Inspector's CLI with ARGS under the Node 22 of node_modules, in a
 * fresh HOME (where it keeps its own state), removed afterwards, which is
 * also its working directory and the KILN_HOME of a kiln it starts.
 * Resolves with { code, stdout, stderr }.
 */
function runInspector(args) {
  const pkg = inspectorPackage();
  const entry = join(INSPECTOR_DIR, pkg.bin.inspector);
  const home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [entry, '--cli', ...args(home)], {
      env: { ...process.env, HOME: home, KILN_HOME: home },
      cwd: home,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), TEST_TIMEOUT - 5_000);
    const done = () => {
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
    };
    child.on('error', (err) => {
      done();
      reject(err);
    });
    child.on('close', (code, signal) => {
      done();
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}

/**
 * Runs `inspector --cli KILN_BIN serve ...ARGS`: the Inspector starts kiln
 * over stdio, with a fresh KILN_HOME.
 */
function inspect(args) {
  // The Inspector starts kiln with only a few variables of its own
  // environment (PATH, HOME, ...): the rest is passed with -e.
  const sanitizers = {};
  for (const name of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) {
    if (process.env[name] !== undefined) sanitizers[name] = process.env[name];
  }
  return runInspector((home) => {
    const envArgs = Object.entries({ KILN_HOME: home, ...sanitizers }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    return [...envArgs, '--cwd', home, KILN_BIN, 'serve', ...args];
  });
}

/**
 * Runs `inspector --cli URL --transport http ...ARGS` against a kiln serving
 * Streamable HTTP at URL.  --stored-auth-only: a server that refuses the
 * request is reported as such, and the Inspector never waits for an
 * interactive OAuth login.
 */
function inspectHttp(url, args) {
  return runInspector(() => [url, '--transport', 'http', '--stored-auth-only', ...args]);
}

/** The Inspector's JSON output, or a failure that shows what it printed. */
function parsed(run) {
  assert.equal(run.code, 0, `the Inspector exited ${run.code}; stdout: ${run.stdout.slice(-2000)}; stderr: ${run.stderr.slice(-2000)}`);
  try {
    return JSON.parse(run.stdout);
  } catch {
    assert.fail(`the Inspector printed no JSON; stdout: ${run.stdout.slice(-2000)}; stderr: ${run.stderr.slice(-2000)}`);
  }
}

/** The text blocks of a tools/call result the Inspector printed, joined. */
function textOf(out) {
  return (out.content ?? []).filter((block) => block.type === 'text').map((block) => block.text).join('\n');
}

/** Asserts that the Inspector's run was refused by kiln for want of a valid bearer token. */
function assertRefused(run) {
  assert.notEqual(run.code, 0, `the Inspector exited 0; stdout: ${run.stdout.slice(-2000)}`);
  assert.equal(run.stdout, '', 'the Inspector printed a result');
  // The Inspector's error envelope quotes kiln's 401 body.
  assert.match(run.stderr, /auth_required/, run.stderr.slice(-2000));
  assert.match(run.stderr, /invalid_token/, run.stderr.slice(-2000));
}

describe(`MCP Inspector CLI ${inspectorPackage().version}`, () => {
  test('the Inspector runs on the Node 22 that npm ci installed', { timeout: TEST_TIMEOUT }, async () => {
    const version = await new Promise((resolve, reject) => {
      const child = spawn(NODE, ['--version'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
      child.on('error', reject);
      child.on('close', () => resolve(out.trim()));
    });
    assert.match(version, /^v22\./, `${NODE} --version: ${version}`);
  });

  test('--method tools/list lists run_python', { timeout: TEST_TIMEOUT }, async () => {
    const out = parsed(await inspect(['--method', 'tools/list']));
    const names = (out.tools ?? []).map((tool) => tool.name);
    assert.ok(names.includes('run_python'), `tools: ${JSON.stringify(names)}`);
  });

  test("--method tools/call --tool-name run_python --tool-arg code='print(6*7)' prints 42", { timeout: TEST_TIMEOUT }, async () => {
    const run = await inspect(['--method', 'tools/call', '--tool-name', 'run_python', '--tool-arg', 'code=print(6*7)']);
    const out = parsed(run);
    assert.notEqual(out.isError, true, run.stdout);
    assert.ok(run.stdout.includes('42'), run.stdout);
    const text = (out.content ?? []).filter((block) => block.type === 'text').map((block) => block.text).join('\n');
    assert.ok(text.includes('42'), `text content: ${JSON.stringify(text)}`);
  });

  describe('over Streamable HTTP: kiln serve --http 127.0.0.1:0 without --token-file', () => {
    const kiln = useHttpKiln({ tokens: 0 });

    test('--transport http --method tools/list lists run_python', { timeout: TEST_TIMEOUT }, async () => {
      const out = parsed(await inspectHttp(kiln.url, ['--method', 'tools/list']));
      const names = (out.tools ?? []).map((tool) => tool.name);
      assert.ok(names.includes('run_python'), `tools: ${JSON.stringify(names)}`);
    });

    test("--transport http --method tools/call --tool-name run_python --tool-arg code='print(6*7)' prints 42", { timeout: TEST_TIMEOUT }, async () => {
      const run = await inspectHttp(kiln.url, ['--method', 'tools/call', '--tool-name', 'run_python', '--tool-arg', 'code=print(6*7)']);
      const out = parsed(run);
      assert.notEqual(out.isError, true, run.stdout);
      assert.match(textOf(out), /^\[session [0-9a-f]+ .*\]\n42$/, `text content: ${JSON.stringify(textOf(out))}`);
      assert.equal(out.structuredContent?.stdout, '42\n', run.stdout);
    });
  });

  describe('over Streamable HTTP: kiln serve --http 127.0.0.1:0 --token-file', () => {
    const kiln = useHttpKiln();
    const bearer = () => ['--header', `Authorization: Bearer ${kiln.tokens[0]}`];

    test('with --header "Authorization: Bearer TOKEN", --method tools/list lists run_python', { timeout: TEST_TIMEOUT }, async () => {
      const out = parsed(await inspectHttp(kiln.url, [...bearer(), '--method', 'tools/list']));
      const names = (out.tools ?? []).map((tool) => tool.name);
      assert.ok(names.includes('run_python'), `tools: ${JSON.stringify(names)}`);
    });

    test('with --header "Authorization: Bearer TOKEN", tools/call run_python of "6*7" gives 42', { timeout: TEST_TIMEOUT }, async () => {
      const run = await inspectHttp(kiln.url, [
        ...bearer(),
        '--method', 'tools/call', '--tool-name', 'run_python', '--tool-arg', 'code=6*7',
      ]);
      const out = parsed(run);
      assert.notEqual(out.isError, true, run.stdout);
      assert.match(textOf(out), /^\[session [0-9a-f]+ .*\]\n42$/, `text content: ${JSON.stringify(textOf(out))}`);
      assert.equal(out.structuredContent?.result, '42', run.stdout);
    });

    test('with a token kiln does not know, the call is refused', { timeout: TEST_TIMEOUT }, async () => {
      assertRefused(await inspectHttp(kiln.url, [
        '--header', `Authorization: Bearer x${kiln.tokens[0]}`,
        '--method', 'tools/call', '--tool-name', 'run_python', '--tool-arg', 'code=print(6*7)',
      ]));
    });

    test('without an Authorization header, tools/list is refused', { timeout: TEST_TIMEOUT }, async () => {
      assertRefused(await inspectHttp(kiln.url, ['--method', 'tools/list']));
    });
  });
});

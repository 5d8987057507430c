// kiln driven through the MCP Inspector's command-line mode
// (`inspector --cli kiln serve --method ...`), the tool people reach for to
// poke at a server by hand.  The Inspector needs Node 22, which npm ci
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
 * Runs `inspector --cli KILN_BIN serve ...ARGS` under the Node 22 of
 * node_modules, with a fresh KILN_HOME (also the Inspector's HOME, where it
 * keeps its own state) removed afterwards.  Resolves with { code, stdout,
 * stderr }.
 */
function inspect(args) {
  const pkg = inspectorPackage();
  const entry = join(INSPECTOR_DIR, pkg.bin.inspector);
  const home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
  // The Inspector starts kiln with only a few variables of its own
  // environment (PATH, HOME, ...): the rest is passed with -e.
  const serverEnv = { KILN_HOME: home };
  for (const name of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) {
    if (process.env[name] !== undefined) serverEnv[name] = process.env[name];
  }
  const envArgs = Object.entries(serverEnv).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [entry, '--cli', ...envArgs, '--cwd', home, KILN_BIN, 'serve', ...args], {
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

/** The Inspector's JSON output, or a failure that shows what it printed. */
function parsed(run) {
  assert.equal(run.code, 0, `the Inspector exited ${run.code}; stdout: ${run.stdout.slice(-2000)}; stderr: ${run.stderr.slice(-2000)}`);
  try {
    return JSON.parse(run.stdout);
  } catch {
    assert.fail(`the Inspector printed no JSON; stdout: ${run.stdout.slice(-2000)}; stderr: ${run.stderr.slice(-2000)}`);
  }
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
});

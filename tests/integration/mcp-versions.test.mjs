// Every MCP revision kiln speaks, as a client of that revision sees it:
// negotiation, the lifecycle, batches, and replies shaped so that an
// older client never receives what its revision does not define.  Raw
// JSON-RPC, so that the bytes checked are the bytes sent.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

import { withRawServer, useRawServer, dump, TEST_TIMEOUT } from './helpers.mjs';

const LATEST = '2025-11-25';
const VERSIONS = [LATEST, '2025-06-18', '2025-03-26', '2024-11-05'];

const FILE_AND_FIGURES = `
open('out.txt', 'w').write('hi')
import matplotlib.pyplot as plt
for i in range(10):
    plt.figure()
    plt.plot([0, i])
`;

function initParams(protocolVersion) {
  const params = { capabilities: {}, clientInfo: { name: 'versions', version: '0' } };
  if (protocolVersion !== undefined) params.protocolVersion = protocolVersion;
  return params;
}

describe('version negotiation', () => {
  for (const version of VERSIONS) {
    test(`a client asking for ${version} gets ${version}`, { timeout: TEST_TIMEOUT }, async () => {
      await withRawServer({ initialize: false }, async (raw) => {
        const r = await raw.request('initialize', initParams(version));
        assert.equal(r.result?.protocolVersion, version, dump(r));
      });
    });
  }

  for (const asked of ['2099-01-01', 'garbage', '']) {
    test(`a client asking for ${JSON.stringify(asked)} is offered ${LATEST}`, { timeout: TEST_TIMEOUT }, async () => {
      await withRawServer({ initialize: false }, async (raw) => {
        const r = await raw.request('initialize', initParams(asked));
        assert.equal(r.result?.protocolVersion, LATEST, dump(r));
      });
    });
  }

  for (const [what, asked] of [['a number', 20250618], ['no version', undefined], ['null', null]]) {
    test(`initialize with ${what} is invalid params, answered with its id`, { timeout: TEST_TIMEOUT }, async () => {
      await withRawServer({ initialize: false }, async (raw) => {
        const r = await raw.request('initialize', initParams(asked), 'init-1');
        assert.equal(r.id, 'init-1');
        assert.equal(r.error?.code, -32602, dump(r));
        assert.match(r.error.message, /protocolVersion/);
        // Still uninitialized: a proper initialize is then answered.
        const again = await raw.request('initialize', initParams(LATEST));
        assert.equal(again.result?.protocolVersion, LATEST, dump(again));
      });
    });
  }
});

describe('the lifecycle', () => {
  test('nothing but ping is served before initialize, and no cell runs', { timeout: TEST_TIMEOUT }, async () => {
    await withRawServer({ initialize: false }, async (raw) => {
      const call = await raw.runPython('open("/work/ran", "w").write("x")');
      assert.equal(call.error?.code, -32600, dump(call));
      assert.match(call.error.message, /before initialize/);
      for (const method of ['tools/list', 'resources/list', 'resources/templates/list']) {
        const r = await raw.request(method, {});
        assert.equal(r.error?.code, -32600, `${method}: ${dump(r)}`);
      }
      const ping = await raw.request('ping', {});
      assert.deepEqual(ping.result, {}, dump(ping));
      // No session was made for the refused call.
      const init = await raw.initialize(LATEST);
      assert.equal(init.result?.protocolVersion, LATEST);
      const listed = await raw.request('tools/call', { name: 'list_sessions', arguments: {} });
      assert.deepEqual(listed.result.structuredContent.sessions, [], dump(listed));
    });
  });

  test('a second initialize is refused and changes nothing', { timeout: TEST_TIMEOUT }, async () => {
    await withRawServer({ initialize: false }, async (raw) => {
      await raw.initialize('2025-03-26');
      const again = await raw.request('initialize', initParams(LATEST));
      assert.equal(again.error?.code, -32600, dump(again));
      assert.match(again.error.message, /already/);
      // Still 2025-03-26: tools carry no title.
      const listed = await raw.request('tools/list', {});
      assert.ok(listed.result.tools.every((t) => t.title === undefined), dump(listed));
    });
  });

  test('tools/list with a cursor kiln never gave is invalid params', { timeout: TEST_TIMEOUT }, async () => {
    await withRawServer({}, async (raw) => {
      const r = await raw.request('tools/list', { cursor: 'next' });
      assert.equal(r.error?.code, -32602, dump(r));
      assert.match(r.error.message, /cursor/);
    });
  });
});

describe('tools as each revision describes them', () => {
  for (const version of VERSIONS) {
    test(`tools/list for ${version}`, { timeout: TEST_TIMEOUT }, async () => {
      await withRawServer({ initialize: false }, async (raw) => {
        const init = await raw.initialize(version);
        const modern = version >= '2025-06-18';
        assert.equal(init.result.serverInfo.title !== undefined, modern, dump(init));
        const { tools } = (await raw.request('tools/list', {})).result;
        const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
        assert.equal(tools.length, 8);
        for (const t of tools) {
          assert.equal(t.title !== undefined, modern, `${t.name}: ${dump(t)}`);
          if (!modern) assert.equal(t.outputSchema, undefined, dump(t));
          if (version === '2024-11-05') {
            assert.equal(t.annotations, undefined, dump(t));
          } else {
            assert.equal(t.annotations?.openWorldHint, t.name === 'install_packages', dump(t));
          }
        }
        assert.equal(byName.run_python.outputSchema !== undefined, modern);
        if (version !== '2024-11-05') {
          for (const name of ['list_files', 'read_file', 'list_sessions']) {
            assert.equal(byName[name].annotations.readOnlyHint, true, name);
          }
          assert.equal(byName.close_session.annotations.destructiveHint, true);
          assert.equal(byName.run_python.annotations.readOnlyHint, false);
        }
      });
    });
  }
});

describe('a cell that writes a file and makes ten figures, per revision', () => {
  for (const version of VERSIONS) {
    test(`${version}`, { timeout: TEST_TIMEOUT }, async () => {
      await withRawServer({ initialize: false }, async (raw) => {
        await raw.initialize(version);
        const r = await raw.runPython(FILE_AND_FIGURES);
        const result = r.result;
        assert.ok(result, dump(r));
        assert.equal(result.isError, false, dump(result));
        const types = result.content.map((b) => b.type);
        const text = result.content.filter((b) => b.type === 'text').map((b) => b.text).join('\n');
        const sessionId = /^\[session ([0-9a-f]+) /.exec(text)?.[1];
        assert.ok(sessionId, text.slice(0, 200));
        const fileUri = `kiln://sessions/${sessionId}/files/out.txt`;
        assert.equal(types.filter((t) => t === 'image').length, 8, dump(types));
        if (version >= '2025-06-18') {
          assert.ok(result.structuredContent, 'no structuredContent');
          assert.ok(result.content.some((b) => b.type === 'resource_link' && b.uri === fileUri), dump(types));
        } else {
          assert.equal(result.structuredContent, undefined, 'structuredContent sent to an old client');
          assert.ok(!types.includes('resource_link'), dump(types));
          assert.ok(types.every((t) => t === 'text' || t === 'image'), dump(types));
          assert.ok(text.includes(fileUri), text);
          // The two figures past the eight inline ones are named too.
          assert.equal((text.match(/kiln:\/\/sessions\/[0-9a-f]+\/artifacts\//g) ?? []).length, 2, text);
          const read = await raw.request('resources/read', { uri: fileUri });
          assert.equal(read.result?.contents?.[0]?.text, 'hi', dump(read));
        }
      });
    });
  }
});

describe('batches', () => {
  test('2025-03-26: a batch is answered as one array, deferred answers included', { timeout: TEST_TIMEOUT }, async () => {
    await withRawServer({ initialize: false }, async (raw) => {
      await raw.initialize('2025-03-26');
      await raw.sendLine([
        { jsonrpc: '2.0', id: 'b1', method: 'ping' },
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        { jsonrpc: '2.0', id: 'b2', method: 'tools/call', params: { name: 'run_python', arguments: { code: '6*7' } } },
        { jsonrpc: '2.0', id: 'b3', method: 'nope' },
      ]);
      const reply = await raw.waitFor((m) => Array.isArray(m));
      assert.equal(reply.length, 3, dump(reply));
      const byId = Object.fromEntries(reply.map((m) => [m.id, m]));
      assert.deepEqual(byId.b1.result, {});
      assert.match(byId.b2.result.content[0].text, /\n42$/, dump(byId.b2));
      assert.equal(byId.b3.error.code, -32601);
    });
  });

  for (const version of ['2025-06-18', LATEST]) {
    test(`${version}: a batch is refused`, { timeout: TEST_TIMEOUT }, async () => {
      await withRawServer({ initialize: false }, async (raw) => {
        await raw.initialize(version);
        await raw.sendLine([{ jsonrpc: '2.0', id: 1, method: 'ping' }]);
        const reply = await raw.waitFor((m) => m && m.error && m.id === null);
        assert.equal(reply.error.code, -32600);
        assert.match(reply.error.message, /batch/);
        // The connection goes on.
        const ping = await raw.request('ping', {});
        assert.deepEqual(ping.result, {});
      });
    });
  }
});

describe('logging', () => {
  const kiln = useRawServer({});

  test('logging is advertised and setLevel checks its level', { timeout: TEST_TIMEOUT }, async () => {
    const bad = await kiln.request('logging/setLevel', { level: 'loud' });
    assert.equal(bad.error?.code, -32602, dump(bad));
    const ok = await kiln.request('logging/setLevel', { level: 'info' });
    assert.deepEqual(ok.result, {}, dump(ok));
  });

  test("kiln's own errors reach the client as notifications/message", { timeout: TEST_TIMEOUT }, async () => {
    // The zygote's death is logged as an error (and the zygote restarted);
    // once it has started, that is: kiln gives up on one that never did.
    const first = await kiln.runPython('1+1');
    assert.ok(first.result, dump(first));
    const zygote = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).find((pid) => {
      try {
        return (
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('__zygote') &&
          readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(kiln.pid)
        );
      } catch {
        return false;
      }
    });
    assert.ok(zygote, 'no zygote found');
    process.kill(zygote, 'SIGKILL');
    const note = await kiln.waitFor((m) => m?.method === 'notifications/message' && /zygote/.test(m.params?.data ?? ''));
    assert.equal(note.params.level, 'error', dump(note));
    assert.equal(note.params.logger, 'kiln');
    // And kiln goes on serving cells.
    const r = await kiln.runPython('1+1');
    assert.match(r.result.content[0].text, /\n2$/, dump(r));
  });
});

describe('completions', () => {
  const kiln = useRawServer({});

  test('session ids, artifact names and file paths complete', { timeout: TEST_TIMEOUT }, async () => {
    const init = await kiln.request('ping', {});
    assert.deepEqual(init.result, {});
    const cell = await kiln.runPython(
      "import os\nos.makedirs('data', exist_ok=True)\nopen('data/alpha.csv','w').write('1')\n" +
        "open('data/beta.csv','w').write('2')\nimport matplotlib.pyplot as plt\nplt.plot([1,2])",
    );
    const sid = cell.result.structuredContent.session_id;
    const filesRef = { type: 'ref/resource', uri: 'kiln://sessions/{session_id}/files/{path}' };
    const ids = await kiln.request('completion/complete', {
      ref: filesRef,
      argument: { name: 'session_id', value: sid.slice(0, 4) },
    });
    assert.ok(ids.result.completion.values.includes(sid), dump(ids));
    const none = await kiln.request('completion/complete', {
      ref: filesRef,
      argument: { name: 'session_id', value: 'zz' },
    });
    assert.deepEqual(none.result.completion.values, [], dump(none));
    const paths = await kiln.request('completion/complete', {
      ref: filesRef,
      argument: { name: 'path', value: 'data/al' },
      context: { arguments: { session_id: sid } },
    });
    assert.deepEqual(paths.result.completion.values, ['data/alpha.csv'], dump(paths));
    const dirs = await kiln.request('completion/complete', {
      ref: filesRef,
      argument: { name: 'path', value: 'da' },
      context: { arguments: { session_id: sid } },
    });
    assert.ok(dirs.result.completion.values.includes('data/'), dump(dirs));
    const names = await kiln.request('completion/complete', {
      ref: { type: 'ref/resource', uri: 'kiln://sessions/{session_id}/artifacts/{name}' },
      argument: { name: 'name', value: 'cell' },
      context: { arguments: { session_id: sid } },
    });
    const artifact = cell.result.structuredContent.artifacts[0].name;
    assert.deepEqual(names.result.completion.values, [artifact], dump(names));
    const history = await kiln.request('completion/complete', {
      ref: { type: 'ref/resource', uri: 'kiln://sessions/{session_id}/history' },
      argument: { name: 'session_id', value: sid.slice(0, 4) },
    });
    assert.ok(history.result.completion.values.includes(sid), dump(history));
    const prompt = await kiln.request('completion/complete', {
      ref: { type: 'ref/prompt', name: 'x' },
      argument: { name: 'a', value: '' },
    });
    assert.equal(prompt.error?.code, -32602, dump(prompt));
  });
});

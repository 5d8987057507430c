// MCP handshake, server identity and tool discovery.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, withRawServer, pollUntil, dump, TEST_TIMEOUT, PROTOCOL_VERSION } from './helpers.mjs';

describe('MCP handshake over the SDK client', () => {
  const kiln = useServer({ listTools: false });

  test('the server identifies itself as "kiln" in serverInfo', { timeout: TEST_TIMEOUT }, () => {
    const info = kiln.client.getServerVersion();
    assert.ok(info, 'initialize returned no serverInfo');
    assert.equal(info.name, 'kiln');
    assert.equal(typeof info.version, 'string');
  });

  test('the server advertises the tools capability', { timeout: TEST_TIMEOUT }, () => {
    const capabilities = kiln.client.getServerCapabilities();
    assert.ok(capabilities?.tools, `capabilities: ${dump(capabilities)}`);
  });

  test('on start the server writes a line beginning with "kiln " to stderr', { timeout: TEST_TIMEOUT }, async () => {
    const text = await pollUntil(() => (kiln.stderr().includes('\n') ? kiln.stderr() : ''), 10_000);
    assert.ok(text, `no complete stderr line; stderr so far: ${JSON.stringify(kiln.stderr())}`);
    const firstLine = text.split('\n')[0];
    assert.ok(firstLine.startsWith('kiln '), `first stderr line: ${JSON.stringify(firstLine)}`);
  });

  test('ping is answered', { timeout: TEST_TIMEOUT }, async () => {
    const result = await kiln.client.ping();
    assert.deepEqual(result, {});
  });

  test('tools/list returns exactly the session, file and package tools', { timeout: TEST_TIMEOUT }, async () => {
    const { tools } = await kiln.client.listTools();
    const names = tools.map((t) => t.name).sort();
    assert.deepEqual(names, ['close_session', 'install_packages', 'list_files', 'list_sessions', 'read_file', 'run_python', 'run_shell', 'upload_file']);
    for (const tool of tools) {
      assert.equal(tool.inputSchema?.type, 'object', `${tool.name} inputSchema: ${dump(tool.inputSchema)}`);
      assert.equal(typeof tool.description, 'string', `${tool.name} has no description`);
    }
  });

  test('run_python declares code as a required string argument and has an outputSchema', { timeout: TEST_TIMEOUT }, async () => {
    const { tools } = await kiln.client.listTools();
    const tool = tools.find((t) => t.name === 'run_python');
    assert.ok(tool, 'run_python missing');
    const schema = tool.inputSchema;
    assert.equal(schema.properties?.code?.type, 'string', dump(schema));
    assert.ok(Array.isArray(schema.required) && schema.required.includes('code'), dump(schema));
    assert.ok(schema.properties?.session_id, `session_id not declared: ${dump(schema)}`);
    assert.ok(schema.properties?.timeout_s, `timeout_s not declared: ${dump(schema)}`);
    assert.equal(tool.outputSchema?.type, 'object', `outputSchema: ${dump(tool.outputSchema)}`);
    for (const key of ['session_id', 'status', 'execution_count', 'result', 'stdout', 'stderr', 'error', 'state_lost']) {
      assert.ok(tool.outputSchema.properties?.[key], `outputSchema lacks ${key}: ${dump(tool.outputSchema)}`);
    }
  });

  test('close_session declares session_id as a required argument', { timeout: TEST_TIMEOUT }, async () => {
    const { tools } = await kiln.client.listTools();
    const tool = tools.find((t) => t.name === 'close_session');
    assert.ok(tool, 'close_session missing');
    assert.ok(tool.inputSchema.properties?.session_id, dump(tool.inputSchema));
    assert.ok(tool.inputSchema.required?.includes('session_id'), dump(tool.inputSchema));
  });
});

describe('protocol version negotiation over raw stdio', () => {
  for (const version of [PROTOCOL_VERSION, '2025-03-26', '2024-11-05']) {
    test(`a client asking for protocol version ${version} gets that version back`, { timeout: TEST_TIMEOUT }, async () => {
      await withRawServer({ initialize: false }, async (raw) => {
        const response = await raw.initialize(version);
        assert.equal(response.jsonrpc, '2.0');
        assert.ok(response.result, `initialize failed: ${dump(response)}`);
        assert.equal(response.result.protocolVersion, version);
        assert.equal(response.result.serverInfo?.name, 'kiln');
        const listed = await raw.request('tools/list', {});
        assert.equal(listed.result?.tools?.length, 8, dump(listed));
      });
    });
  }

  test(`a client asking for an unsupported protocol version is offered ${PROTOCOL_VERSION}`, { timeout: TEST_TIMEOUT }, async () => {
    await withRawServer({ initialize: false }, async (raw) => {
      const response = await raw.initialize('2099-01-01');
      assert.ok(response.result, `initialize failed: ${dump(response)}`);
      assert.equal(response.result.protocolVersion, PROTOCOL_VERSION);
    });
  });

  test('every line the server writes to stdout is a JSON-RPC 2.0 message', { timeout: TEST_TIMEOUT }, async () => {
    await withRawServer({}, async (raw) => {
      await raw.request('tools/list', {});
      const call = await raw.runPython('print("hello")\n1+1');
      assert.equal(call.result?.structuredContent?.result, '2', dump(call));
      assert.deepEqual(raw.badLines, [], 'stdout carried non-JSON lines');
    });
  });
});

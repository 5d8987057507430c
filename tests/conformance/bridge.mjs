// A Streamable HTTP front for a server that speaks MCP on stdio only:
// the TypeScript SDK's own server transport on 127.0.0.1:PORT/mcp, one
// child process per MCP session, messages passed through unchanged.
//
//   node bridge.mjs PORT COMMAND [ARG...]
//
// `run --via-stdio` uses it so that the scenarios about what mcp/ answers
// can run before kiln serves HTTP itself.  What it shows about the
// transport (sessions, SSE, Host checks) is the SDK's, not kiln's: run
// does not count the transport scenarios in that mode.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const [port, command, ...args] = process.argv.slice(2);
if (!port || !command) {
  console.error('usage: node bridge.mjs PORT COMMAND [ARG...]');
  process.exit(2);
}
const host = `127.0.0.1:${port}`;
const sessions = new Map(); // session id -> transport

function startSession() {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  // The client's requests not yet answered, oldest first: a message the
  // server sends that is not an answer (a notification, a request of its
  // own) goes on the stream of the newest one, as a server of the
  // transport would send it during the request it belongs to.
  const open = [];
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: randomUUID,
    onsessioninitialized: (id) => sessions.set(id, transport),
    enableDnsRebindingProtection: true,
    allowedHosts: [host, `localhost:${port}`],
  });
  transport.onmessage = (msg) => {
    if ('method' in msg && 'id' in msg) open.push(msg.id);
    child.stdin.write(JSON.stringify(msg) + '\n');
  };
  transport.onclose = () => {
    if (transport.sessionId) sessions.delete(transport.sessionId);
    child.stdin.end();
  };
  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    const answer = 'id' in msg && !('method' in msg);
    if (answer) {
      const i = open.indexOf(msg.id);
      if (i >= 0) open.splice(i, 1);
      transport.send(msg).catch(() => {});
    } else {
      const related = open.length ? { relatedRequestId: open[open.length - 1] } : {};
      transport.send(msg, related).catch(() => {});
    }
  });
  child.on('exit', () => transport.close().catch(() => {}));
  return transport;
}

createServer(async (req, res) => {
  if (new URL(req.url, `http://${host}`).pathname !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  const id = req.headers['mcp-session-id'];
  let transport = id ? sessions.get(id) : undefined;
  if (!transport) {
    if (id) {
      res.writeHead(404).end();
      return;
    }
    transport = startSession();
  }
  await transport.handleRequest(req, res);
  // A first request that did not start a session (refused, or not an
  // initialize) leaves nothing to keep.
  if (!transport.sessionId) transport.close().catch(() => {});
}).listen(Number(port), '127.0.0.1', () => console.error(`bridge: http://${host}/mcp`));

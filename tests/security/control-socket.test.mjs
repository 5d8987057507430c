// The worker's control socket (fd 3 in the cell's process) is the one
// channel the front trusts for a session's results.  A process the cell
// starts inherits it; what such a process writes there must end the
// session, never pass for the worker's reply.  And the socket must not
// lead to a host process.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, useBystander, run, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { attack, jailArgs, modeName } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };

/** Python that builds a DONE frame (type 32) saying status 0, result RESULT. */
const FORGE = [
  'import os, struct, time',
  'def field(tag, data): return struct.pack("<HI", tag, len(data)) + data',
  'def forged(result):',
  '    body = field(10, struct.pack("<Q", 0)) + field(11, result.encode())',
  '    return struct.pack("<IHH", len(body), 32, 0) + body',
].join('\n');

// The first two are the front's own defences and hold with or without the
// jail; SO_PEERPIDFD is the seccomp policy's.
describe(`the control socket (${modeName})`, () => {
  const server = useServer({ args: jailArgs });
  const bystander = useBystander(server);


  test('a child of the cell that answers on fd 3 ends the session; its forged result is never seen', opts, async () => {
    const r = await run(server.client, [
      FORGE,
      'pid = os.fork()',
      'if pid == 0:',
      '    os.write(3, forged("FORGED"))',
      '    os._exit(0)',
      'os.waitpid(pid, 0)',
      'time.sleep(2)',
      '"genuine"',
    ].join('\n'));
    assert.notEqual(r.result, 'FORGED');
    assert.equal(r.status, 'crashed', JSON.stringify(r));
    assert.match(r.error.message, /a process other than the worker .* wrote on its control socket/);
    const next = await run(server.client, '1 + 1', { session_id: r.session_id });
    assert.equal(next.result, '2');
    assert.equal(next.state_lost, true);
    await bystander.unharmed();
  });

  test('a child that stops the worker and answers for it is caught too', opts, async () => {
    const r = await run(server.client, [
      FORGE,
      'import signal',
      'parent = os.getpid()',
      'pid = os.fork()',
      'if pid == 0:',
      '    os.kill(parent, signal.SIGSTOP)',
      '    os.write(3, forged("FORGED"))',
      '    os.kill(parent, signal.SIGCONT)',
      '    os._exit(0)',
      'time.sleep(3)',
      '"genuine"',
    ].join('\n'));
    assert.notEqual(r.result, 'FORGED');
    assert.equal(r.status, 'crashed');
    assert.match(r.error.message, /a process other than the worker/);
    await bystander.unharmed();
  });

  attack(test, 'SO_PEERPIDFD on fd 3 is refused with EPERM (it would be a pidfd of the zygote)', opts, async () => {
    const r = await run(server.client, [
      'import socket, errno',
      's = socket.socket(fileno=3)',
      'try:',
      '    s.getsockopt(socket.SOL_SOCKET, 77, 4)',
      '    out = "got a pidfd"',
      'except OSError as e:',
      '    out = errno.errorcode[e.errno]',
      's.detach()',
      'out',
    ].join('\n'));
    assert.equal(r.result, "'EPERM'", JSON.stringify(r.error));
    await bystander.unharmed();
  });
});

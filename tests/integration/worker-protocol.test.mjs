// A worker is untrusted: a cell can write anything to its control socket
// (fd 3) or close it.  Whatever it sends, only that session is lost; the
// front and the other sessions carry on.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, useBystander, run, dump, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };

// Each cell forges something on the worker's control socket, then waits so
// that the front, not the cell, decides what happens next.
const attacks = {
  'garbage bytes': 'import os, time\nos.write(3, b"\\xff" * 64)\ntime.sleep(30)',
  'a header claiming a 2 GiB frame':
    'import os, struct, time\nos.write(3, struct.pack("<IHH", 2**31, 32, 0))\ntime.sleep(30)',
  'a frame of an unknown type': 'import os, struct, time\nos.write(3, struct.pack("<IHH", 0, 99, 0))\ntime.sleep(30)',
  'a second "ready" frame': 'import os, struct, time\nos.write(3, struct.pack("<IHH", 0, 30, 0))\ntime.sleep(30)',
  'a field running past its frame':
    'import os, struct, time\nos.write(3, struct.pack("<IHH", 6, 32, 0) + struct.pack("<HI", 10, 1000))\ntime.sleep(30)',
  'closing the control socket': 'import os, time\nos.close(3)\ntime.sleep(30)',
  'a flood of data': 'import os\nwhile True: os.write(3, b"\\x00" * 65536)',
  'a display of an unknown kind':
    'import os, struct, time\nf = struct.pack("<HIQ", 44, 8, 9)\nos.write(3, struct.pack("<IHH", len(f), 39, 0) + f)\ntime.sleep(30)',
  'a display whose output record runs past its field':
    'import os, struct, time\nf = struct.pack("<HIQ", 44, 8, 0) + struct.pack("<HI", 19, 5) + b"\\x05\\x00xxx"\n'
    + 'os.write(3, struct.pack("<IHH", len(f), 39, 0) + f)\ntime.sleep(30)',
  'a flood of clears whose answers are never read':
    'import os, struct\nf = struct.pack("<HIQ", 44, 8, 2)\nf = struct.pack("<IHH", len(f), 39, 0) + f\n'
    + 'while True: os.write(3, f * 4096)',
};

describe('a worker that breaks the protocol', () => {
  const kiln = useServer({ args: ['--timeout', '20'] });
  const bystander = useBystander(kiln);

  for (const [name, code] of Object.entries(attacks)) {
    test(`${name} ends only that worker`, opts, async () => {
      const victim = await run(kiln.client, 'x = 1');
      const sc = await run(kiln.client, code, { session_id: victim.session_id });
      assert.equal(sc.status, 'crashed', dump(sc));
      assert.match(sc.error.message, /worker/, dump(sc));
      // The session itself survives with a fresh interpreter.
      const after = await run(kiln.client, "'x' in globals()", { session_id: victim.session_id });
      assert.equal(after.status, 'ok', dump(after));
      assert.equal(after.result, 'False', dump(after));
      assert.equal(after.state_lost, true, dump(after));
      // Other sessions never noticed.
      await bystander.unharmed();
    });
  }
});

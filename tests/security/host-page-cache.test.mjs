// A cell cannot evict the host's page cache: the read-only binds are the
// host's own files (libpython, the venv), and advice that drops their
// cached pages would slow every process on the host that reads them.
// Each attack asserts the exact errno, then that a bystander session is
// unharmed.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useServer, useBystander, run, TEST_TIMEOUT } from '../integration/helpers.mjs';
import { attack, jailArgs, modeName } from './mode.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe(`host page cache (${modeName})`, () => {
  const server = useServer({ args: jailArgs });
  const bystander = useBystander(server);


  attack(test, 'posix_fadvise DONTNEED on a host file is refused with EPERM', opts, async () => {
    const r = await run(server.client, [
      'import os, sys, errno',
      'fd = os.open(sys.executable, os.O_RDONLY)',
      'try:',
      '    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)',
      '    out = "done"',
      'except OSError as e:',
      '    out = errno.errorcode[e.errno]',
      'out',
    ].join('\n'));
    assert.equal(r.result, "'EPERM'");
    await bystander.unharmed();
  });

  attack(test, 'madvise MADV_PAGEOUT and MADV_COLD on a mapped host file are refused with EPERM', opts, async () => {
    const r = await run(server.client, [
      'import ctypes, sys, errno',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'f = open(sys.executable, "rb")',
      'import os',
      'out = []',
      'page = os.sysconf("SC_PAGE_SIZE")',
      'libc.mmap.restype = ctypes.c_void_p',
      'p = libc.mmap(None, ctypes.c_size_t(page), 1, 1, f.fileno(), ctypes.c_long(0))',
      'for advice in (21, 20):  # MADV_PAGEOUT, MADV_COLD',
      '    r = libc.madvise(ctypes.c_void_p(p), ctypes.c_size_t(page), advice)',
      '    out.append(errno.errorcode.get(ctypes.get_errno()) if r else "done")',
      'out',
    ].join('\n'));
    assert.equal(r.result, "['EPERM', 'EPERM']", JSON.stringify(r.error));
    await bystander.unharmed();
  });

  test('advice that only concerns the session itself still works', opts, async () => {
    const r = await run(server.client, [
      'import os, sys',
      'fd = os.open(sys.executable, os.O_RDONLY)',
      'os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)',
      'import numpy as np; a = np.ones(1 << 20); a.sum()',
    ].join('\n'));
    assert.equal(r.status, 'ok', JSON.stringify(r.error));
    assert.equal(r.result, 'np.float64(1048576.0)');
  });
});

// kiln --help is printed from the settings table itself, so it lists
// every option kiln accepts; the README's table lists the same ones.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { KILN_BIN, TEST_TIMEOUT } from './helpers.mjs';

const opts = { timeout: TEST_TIMEOUT };
const README = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

const flagsIn = (text, pattern) => [...text.matchAll(pattern)].map((m) => m[1]).sort();

test('--help lists every option, each with its environment variable, and the README lists the same', opts, () => {
  const help = spawnSync(KILN_BIN, ['--help'], { encoding: 'utf8' }).stdout;
  const inHelp = flagsIn(help, /^ {2}--([a-z-]+)/gm);
  const inReadme = flagsIn(readFileSync(README, 'utf8'), /^\| `--([a-z-]+)` \| `KILN_/gm);
  assert.ok(inHelp.length >= 20, help);
  assert.deepEqual(inHelp, inReadme);
  for (const flag of inHelp) {
    const env = `KILN_${flag.toUpperCase().replaceAll('-', '_')}`;
    assert.match(help, new RegExp(`\\(${env}; default `), `${flag} names ${env}`);
    // Every option listed is one kiln accepts.
    const r = spawnSync(KILN_BIN, ['doctor', `--${flag}`, 'x'], { encoding: 'utf8' });
    assert.doesNotMatch(r.stderr, /unknown option/, flag);
  }
});

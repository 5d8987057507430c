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

// kiln run's own options come first; the settings, which every command
// takes, after this line.
const SETTINGS = /^Options \(each also read from the environment variable shown; flags win\):$/m;

test('--help lists every option, each with its environment variable, and the README lists the same', opts, () => {
  const help = spawnSync(KILN_BIN, ['--help'], { encoding: 'utf8' }).stdout;
  const [, settings] = help.split(SETTINGS);
  assert.ok(settings, help);
  const inHelp = flagsIn(settings, /^ {2}--([a-z-]+)/gm);
  const inReadme = flagsIn(readFileSync(README, 'utf8'), /^\| `--([a-z-]+)` \| `KILN_/gm);
  assert.ok(inHelp.length >= 20, help);
  assert.deepEqual(inHelp, inReadme);
  for (const flag of inHelp) {
    const env = `KILN_${flag.toUpperCase().replaceAll('-', '_')}`;
    assert.match(settings, new RegExp(`\\(${env}; default `), `${flag} names ${env}`);
    // Every option listed is one kiln accepts.
    const r = spawnSync(KILN_BIN, ['doctor', `--${flag}`, 'x'], { encoding: 'utf8' });
    assert.doesNotMatch(r.stderr, /unknown option/, flag);
  }
});

test("kiln run's own options are in --help and the README, and no other command takes them", opts, () => {
  const help = spawnSync(KILN_BIN, ['--help'], { encoding: 'utf8' }).stdout;
  const [runPart] = help.split(SETTINGS);
  assert.deepEqual(flagsIn(runPart, /^ {2}--([a-z-]+)/gm), ['keep', 'workdir']);
  assert.match(runPart, /^ {2}--workdir DIR +copy DIR's regular files and directories/m);
  assert.match(runPart, /^ {2}--keep +after the script, copy \/work's regular files/m);
  assert.match(help, /kiln run \[OPTIONS\] FILE\.py \[ARGS\.\.\.\]/);
  assert.match(help, /kiln run \[OPTIONS\] - \[ARGS\.\.\.\]/);
  assert.match(help, /74 when the script succeeded but --keep could not copy/);
  const readme = readFileSync(README, 'utf8');
  for (const flag of ['--workdir DIR', '--keep', 'kiln run - [ARGS...]', 'sys.argv[1:]']) {
    assert.ok(readme.includes(flag), `the README does not mention ${flag}`);
  }
  for (const flag of ['workdir', 'keep']) {
    const r = spawnSync(KILN_BIN, ['doctor', `--${flag}`, 'x'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`--${flag} is an option of kiln run`));
  }
});

// The mode the security battery runs in.  tests/run.sh runs it three times:
// as root, as an unprivileged user (kiln then jails through a user
// namespace), and once more as root with KILN_EXPECT_UNJAILED=1, where kiln
// runs with --insecure-no-sandbox and every attack on the jail must fail.

/** kiln runs as an unprivileged user and builds its jail in a user namespace. */
export const unprivileged = process.getuid() !== 0;

/** kiln runs without its jail, and the jail's tests are expected to fail. */
export const unjailed = process.env.KILN_EXPECT_UNJAILED === '1';

/** Arguments that make kiln run without its jail in the unjailed mode. */
export const jailArgs = unjailed ? ['--insecure-no-sandbox'] : [];

/** The mode in words, for suite names. */
export const modeName = [
  unprivileged ? 'unprivileged kiln' : 'kiln as root',
  ...(unjailed ? ['WITHOUT the jail'] : []),
].join(', ');

/**
 * Declares an attack on the jail with node:test's TEST.  Without the jail
 * its expectation is inverted: it passes only if its own assertions fail,
 * which shows that it can tell a jailed worker from an unjailed one;
 * anything but a failed assertion (a crash of the test, a timeout) still
 * fails it.  SKIP, when set, is the reason it cannot run in this mode.
 */
export function attack(test, name, opts, fn, { skip } = {}) {
  if (!unjailed || skip) return test(name, { ...opts, skip }, fn);
  return test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (err?.name !== 'AssertionError') throw err;
      t.diagnostic(`without the jail: ${err.message.split('\n')[0]}`);
      return;
    }
    throw new Error('passed without the jail: this test cannot tell a jailed worker from an unjailed one');
  });
}

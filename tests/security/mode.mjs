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

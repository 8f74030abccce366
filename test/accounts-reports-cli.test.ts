/**
 * `remora accounts reports <login> on|off` as a real process on a state directory whose
 * config.json names the test PostgreSQL: the flag is stored and `accounts list` shows it; an
 * unknown login is AccountNotFound (exit 4), a word other than on/off a UsageError (exit 2),
 * neither changing anything.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CATALOG } from '../src/core/errors.js';
import { accountByLogin, createAccount } from '../src/frontdoor/accounts.js';
import { openCliState, type CliState } from './helpers/cli-state.js';

let cli: CliState;
const remora = (...args: string[]) => cli.remora(...args);

before(async () => {
  cli = await openCliState();
  await createAccount(cli.tier, { login: 'alice' }, Date.now());
  await createAccount(cli.tier, { login: 'bob', reports: false }, Date.now());
});
after(async () => {
  await cli?.close();
});

const reportsColumn = (stdout: string): Record<string, string | undefined> =>
  Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/))
      .map((c): [string, string | undefined] => [c[0]!, c[2]]),
  );

test('accounts reports <login> off|on: stored, shown by accounts list', async () => {
  const help = await remora('accounts', 'reports', '--help');
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Usage: remora accounts reports \[options\] <login> <on\|off>/);
  assert.match(help.stdout, /deliver usage reports/);

  const off = await remora('accounts', 'reports', 'alice', 'off');
  assert.equal(off.code, 0, off.stderr);
  assert.equal(off.stdout, 'alice: reports off\n');
  assert.equal((await accountByLogin(cli.tier, 'alice'))?.reports, false);
  const on = await remora('accounts', 'reports', 'bob', 'on');
  assert.equal(on.code, 0, on.stderr);
  const list = await remora('accounts', 'list');
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(reportsColumn(list.stdout), { alice: 'false', bob: 'true' });
  // The rest of the record is untouched (the token still authenticates the same account).
  const bob = await accountByLogin(cli.tier, 'bob');
  assert.equal(bob?.reports, true);
  assert.match(bob?.tokenHash ?? '', /^[0-9a-f]{64}$/);
});

test('an unknown login: AccountNotFound, exit 4; not on/off: UsageError, exit 2; nothing changed', async () => {
  const r = await remora('accounts', 'reports', 'carol', 'on');
  assert.equal(r.code, ERROR_CATALOG.AccountNotFound.exit);
  assert.match(
    r.stderr,
    /remora: AccountNotFound: no account "carol": `remora accounts list` shows the logins/,
  );
  assert.equal(r.stdout, '');
  const w = await remora('accounts', 'reports', 'bob', 'maybe');
  assert.equal(w.code, ERROR_CATALOG.UsageError.exit);
  assert.match(w.stderr, /remora: UsageError: expected "on" or "off" after the login, got "maybe"/);
  assert.equal((await accountByLogin(cli.tier, 'bob'))?.reports, true);
  assert.doesNotMatch(r.stderr + w.stderr, /\n\s+at /, 'no stack trace');
});

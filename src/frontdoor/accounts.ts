/**
 * Accounts: uuid, login, whether usage reports are delivered, and a bearer token (stored
 * hashed). Stored in the `accounts` bucket on the storage shard. Creating an account also
 * creates its root directories (`/<uuid>/stor`, `public`, `reports`, `jobs`, `uploads`), as
 * Manta provisioned them; `reports` is written only by the operator's delivery jobs.
 */
import crypto from 'node:crypto';
import { RemoraError } from '../core/errors.js';
import { ALL_NAMESPACES } from '../core/ids.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { findRowsBy } from '../metadata/moray.repository.js';
import { ACCOUNTS_BUCKET } from '../metadata/buckets.js';
import type { AccountValue } from '../metadata/types.js';
import { directoryValue } from './records.js';

export const OPERATOR_LOGIN = 'poseidon';

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

export interface NewAccount {
  login: string;
  uuid?: string;
  reports?: boolean;
  operator?: boolean;
  /** A fixed token (tests, reproducible workloads); random otherwise. */
  token?: string;
}

export async function createAccount(
  tier: MetadataTier,
  a: NewAccount,
  now: number,
): Promise<{ account: AccountValue; token: string }> {
  if (!/^[a-zA-Z][a-zA-Z0-9_.-]{1,31}$/.test(a.login)) {
    throw new RemoraError(
      'BadRequest',
      `invalid login "${a.login}": letters, digits, _ . - ; 2 to 32 characters`,
    );
  }
  const token = a.token ?? crypto.randomBytes(24).toString('base64url');
  const account: AccountValue = {
    uuid: a.uuid ?? crypto.randomUUID(),
    login: a.login,
    reports: a.reports ?? true,
    tokenHash: hashToken(token),
    ...(a.operator ? { operator: true } : {}),
  };
  const existing = await accountByLogin(tier, a.login);
  if (existing) throw new RemoraError('BadRequest', `account "${a.login}" already exists`);
  await tier.putObject(ACCOUNTS_BUCKET.name, account.uuid, account as unknown as Record<string, unknown>, {
    etag: null,
  });
  for (const ns of ALL_NAMESPACES) {
    const key = `/${account.uuid}/${ns}`;
    await tier.putObject(
      'manta',
      key,
      directoryValue(key, account.uuid, now) as unknown as Record<string, unknown>,
    );
  }
  return { account, token };
}

export async function accountByLogin(tier: MetadataTier, login: string): Promise<AccountValue | undefined> {
  const rows = await findRowsBy<AccountValue>(tier.storageShard.pool, ACCOUNTS_BUCKET, 'login', login, 1);
  return rows[0]?.value;
}

/**
 * Turn the delivery of usage reports to an account on or off (`remora accounts reports`); the
 * metering jobs read the flag at each delivery. Returns the account as it is now.
 */
export async function setAccountReports(
  tier: MetadataTier,
  login: string,
  reports: boolean,
): Promise<AccountValue> {
  const a = await accountByLogin(tier, login);
  if (!a)
    throw new RemoraError(
      'AccountNotFound',
      `no account "${login}": \`remora accounts list\` shows the logins`,
    );
  const updated: AccountValue = { ...a, reports };
  await tier.putObject(ACCOUNTS_BUCKET.name, a.uuid, updated as unknown as Record<string, unknown>);
  return updated;
}

export async function accountByUuid(tier: MetadataTier, uuid: string): Promise<AccountValue | undefined> {
  return (await tier.getObject<AccountValue>(ACCOUNTS_BUCKET.name, uuid))?.value;
}

export async function accountByToken(tier: MetadataTier, token: string): Promise<AccountValue | undefined> {
  const rows = await findRowsBy<AccountValue>(
    tier.storageShard.pool,
    ACCOUNTS_BUCKET,
    'tokenHash',
    hashToken(token),
    1,
  );
  return rows[0]?.value;
}

export async function listAccounts(tier: MetadataTier): Promise<AccountValue[]> {
  const r = await tier.storageShard.pool.query<{ _value: string }>(
    'SELECT _value FROM accounts ORDER BY login',
  );
  return r.rows.map((x) => JSON.parse(x._value) as AccountValue);
}

/**
 * What a problem report may show of a config value. A rejected secret must not be echoed:
 * `--check` output lands in CI logs and terminals, start-up errors and `reload-rejected` in the
 * journal. Problems (problems.ts) pass every value and message through here, so no caller has
 * to remember which keys are secret.
 */
import type { Path } from './problems.ts';

/** Keys whose whole value is a secret (admin.token, and any *password/*secret a future key brings). */
const SECRET_KEY = /(token|password|passwd|secret|apikey|api_key)$/i;

/** Keys holding a URL that may carry credentials even when written without a scheme. */
const URL_KEYS: readonly (readonly string[])[] = [['policy', 'rateLimitStore']];

/** `scheme://userinfo@` up to the last `@` of a run without spaces or quotes (a password may hold `@` or `/`). */
const URL_CREDENTIALS = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^\s"'<>]*)@/g;

export function isSecretPath(path: Path): boolean {
  const last = path.at(-1);
  return typeof last === 'string' && SECRET_KEY.test(last);
}

/**
 * How a value at `path` may read in a report: a secret as its length only
 * (`<redacted, 5 characters>`), any other string with URL passwords masked.
 */
export function redactValue(path: Path, value: string): string {
  if (isSecretPath(path)) return `<redacted, ${value.length} characters>`;
  const urlKey = URL_KEYS.some((k) => k.length === path.length && k.every((seg, i) => seg === path[i]));
  if (urlKey && !value.includes('://') && value.includes('@')) {
    return `***@${value.slice(value.lastIndexOf('@') + 1)}`;
  }
  return redactCredentials(value);
}

/**
 * `redis://:secret@host:6379` → `redis://:***@host:6379`, `redis://user:secret@host` →
 * `redis://user:***@host`, `redis://secret@host` → `redis://***@host` (a lone name may be a password).
 */
export function redactCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon === -1 ? `${scheme}***@` : `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
}

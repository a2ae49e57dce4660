/**
 * Rules that spot secrets in shell commands, so that command history never stores them.
 * A rule is a named regular expression; a command matching any rule is refused whole
 * (masking part of it would still sync the rest of a secret-bearing line). Users add rules
 * per collection: `kitsync collection set history --secret-rule NAME=REGEX`.
 */

export interface SecretRule {
  name: string
  /** A JavaScript regular expression, matched case-insensitively. */
  pattern: string
}

export const BUILTIN_SECRET_RULES: readonly SecretRule[] = [
  { name: 'password-option', pattern: String.raw`(^|\s)--?(password|passwd|pass|pwd)(=|\s+)\S+` },
  { name: 'token-option', pattern: String.raw`(^|\s)--?(token|auth-token|api-?key|secret|secret-key|access-key|client-secret|private-key)(=|\s+)\S+` },
  {
    name: 'secret-variable',
    pattern: String.raw`(^|[\s;&|(])(export\s+|env\s+)?[A-Za-z_][A-Za-z0-9_]*(SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)[A-Za-z0-9_]*=\S+`,
  },
  { name: 'mysql-password', pattern: String.raw`\b(mysql|mysqldump|mariadb)\b.*\s-p\S+` },
  { name: 'sshpass', pattern: String.raw`\bsshpass\b.*\s-p\s*\S+` },
  { name: 'basic-auth-option', pattern: String.raw`\s(-u|--user)\s+[^\s:]+:\S+` },
  { name: 'url-credentials', pattern: String.raw`[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@` },
  { name: 'auth-header', pattern: String.raw`(authorization|x-api-key|private-token|x-auth-token)\s*:\s*\S+` },
  { name: 'bearer-token', pattern: String.raw`\bbearer\s+[A-Za-z0-9._~+/-]{8,}` },
  { name: 'private-key', pattern: String.raw`-----BEGIN [A-Z0-9 ]*PRIVATE KEY` },
  {
    name: 'known-token-format',
    pattern: String.raw`\b((ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20})`,
  },
]

const compiled = new Map<string, RegExp>()

function regexOf(rule: SecretRule): RegExp {
  let re = compiled.get(rule.pattern)
  if (re === undefined) {
    re = new RegExp(rule.pattern, 'i')
    compiled.set(rule.pattern, re)
  }
  return re
}

/** Check that a user rule compiles; returns the error message when it does not. */
export function secretRuleError(rule: SecretRule): string | undefined {
  try {
    regexOf(rule)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/** The first rule (built-in, then extra) that matches `text`. */
export function findSecret(text: string, extra: readonly SecretRule[] = []): SecretRule | undefined {
  for (const rule of [...BUILTIN_SECRET_RULES, ...extra]) {
    let re: RegExp
    try {
      re = regexOf(rule)
    } catch {
      // Refused when set on this device (secretRuleError); one that came otherwise (synced
      // settings) is skipped rather than making every write fail.
      continue
    }
    if (re.test(text)) return rule
  }
  return undefined
}

#!/usr/bin/env node
// No secret in the logs (SECURITY.md, "Logs"): after the compat suite ran with RF_COMPAT_TRACE=1
// (every server it starts at trace level), this scans every server log of that run for what
// must never be logged, and fails naming the file, line and kind of each finding:
//   - every secret the suite handed to a server (app secrets, the console token, the JWT secret,
//     webhook URL credentials: recorded by the harness in <dir>/.secrets.jsonl as it starts each
//     server), and the suite's encryption master key;
//   - any 64-hex-digit value: an HMAC-SHA256 signature (HTTP API `auth_signature`, subscription
//     and sign-in `auth`, webhook `X-Pusher-Signature`, the console's session cookie) is one, and
//     the server logs none at all, so there is no need to tell a valid one from a forged one;
//   - `key:signature` (a subscription or sign-in `auth` string);
//   - a JWT (`eyJ….eyJ….sig`: a bearer credential of the embedding example).
// What matched is printed masked (its first 4 characters and its length), never whole.
//
// Usage: node scan-logs.mjs [--require-trace] [DIR]
//   DIR              the run's log directory (default $RF_LOG_DIR, else compat-tests/logs)
//   --require-trace  also fail when a log has no TRACE line (the run was not at trace level,
//                    so a clean scan would prove nothing)
// Exit: 0 clean, 1 something found (or a log not at trace level), 2 nothing to scan.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MASTER_KEY_B64, SECRETS_FILE } from './lib/harness.mjs';

const ROOT = path.dirname(fileURLToPath(import.meta.url));
/** Secret-like values the suite uses that no server is given (the SDKs' encryption master key). */
const SUITE_SECRETS = [{ what: 'the SDKs\' encryption master key (MASTER_KEY_B64)', value: MASTER_KEY_B64 }];
/** At most this many findings are printed per file (all are counted). */
const PRINT_PER_FILE = 20;

const HEX64 = '(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])';
const PATTERNS = [
  { kind: 'key:signature (an auth string)', re: new RegExp(`[A-Za-z0-9_.-]+:${HEX64}`, 'g') },
  { kind: '64 hex digits (an HMAC-SHA256 signature?)', re: new RegExp(HEX64, 'g') },
  { kind: 'a JWT (bearer credential)', re: /eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}/g },
];
/**
 * The one place where 64 hex digits are logged and are no signature: at trace, rustls prints the
 * TLS handshake messages it receives and sends, with the hello `random`s and `session_id`s, the
 * X25519 key shares' `payload` (public keys) and the session tickets it issues with their
 * `nonce` (a TLS 1.3 `ticket` from rustls's default server config names a session in its
 * in-memory cache; resuming with it takes the client's resumption secret, never logged). Exactly
 * those fields, in events of a `rustls::` target, are exempt.
 */
const TLS_HANDSHAKE_TARGET = /^rustls::/;
const TLS_HANDSHAKE_FIELD = /(?:\brandom|\bsession_id|\bpayload|\bnonce|\bticket): $/;
// tracing's colours: stripped so that a value split by escape codes is still seen whole.
const ANSI = /\x1b\[[0-9;]*m/g;
// A tracing event's first line: timestamp, level, target.
const EVENT = /^\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+([A-Za-z0-9_:]+):/;
// A secret is found where it is not part of a longer name (`--app-secret` is a flag's name, not
// the default secret `app-secret`).
const NAME_CHAR = '[A-Za-z0-9_-]';
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `abcd… (64 chars)` (at most a quarter shown): enough to recognise what matched, not to use it. */
export function mask(s) {
  return `${s.slice(0, Math.min(4, Math.floor(s.length / 4)))}… (${s.length} chars)`;
}

/** The secrets to look for, [{ what, value, re }]: the suite's own and every one recorded in `dir`. */
export function loadSecrets(dir) {
  const secrets = [...SUITE_SECRETS];
  const file = path.join(dir, SECRETS_FILE);
  if (fs.existsSync(file)) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (line.trim()) secrets.push(...JSON.parse(line).secrets);
    }
  }
  const seen = new Set();
  return secrets
    .filter((s) => !seen.has(s.value) && seen.add(s.value))
    .map((s) => ({ ...s, re: new RegExp(`(?<!${NAME_CHAR})${escape(s.value)}(?!${NAME_CHAR})`, 'g') }));
}

/**
 * Every finding in one line (ANSI colours stripped), [{ col, kind, text }]; `target` is the
 * tracing target of the event the line belongs to.
 */
export function scanLine(raw, secrets, target = '') {
  const line = raw.replace(ANSI, '');
  const found = [];
  for (const { what, re } of secrets) {
    for (const m of line.matchAll(re)) found.push({ col: m.index + 1, kind: `a secret (${what})`, text: m[0] });
  }
  for (const { kind, re } of PATTERNS) {
    for (const m of line.matchAll(re)) {
      const before = line.slice(0, m.index);
      if (TLS_HANDSHAKE_TARGET.test(target) && TLS_HANDSHAKE_FIELD.test(before)) continue;
      found.push({ col: m.index + 1, kind, text: m[0] });
    }
  }
  // A key:signature also matches as 64 hex digits: report it once, as the more precise kind.
  const auths = found.filter((f) => f.kind.startsWith('key:'));
  return found.filter((f) => !(f.kind.startsWith('64 hex') && auths.some((a) => a.col + a.text.length === f.col + f.text.length)));
}

/** The line with every finding masked, cut to `max` characters around the first one. */
function context(raw, found, max = 160) {
  let line = raw.replace(ANSI, '');
  for (const f of [...found].sort((a, b) => b.text.length - a.text.length)) line = line.split(f.text).join(`<${mask(f.text)}>`);
  const first = Math.max(0, Math.min(...found.map((f) => f.col)) - 60);
  return (first > 0 ? '…' : '') + line.slice(first, first + max) + (line.length > first + max ? '…' : '');
}

/**
 * Scans one log file; returns { lines, trace, findings: [{ line, col, kind, text, context }] }.
 * `trace`: the log has a TRACE event, or the server said its filter is trace (`log filter:`,
 * rf-broadcast's first debug line; a server that had nothing to log at trace has no TRACE line).
 */
export async function scanFile(file, secrets) {
  const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  const out = { lines: 0, trace: false, findings: [] };
  let target = '';
  for await (const raw of rl) {
    out.lines++;
    const plain = raw.replace(ANSI, '');
    const event = plain.match(EVENT);
    if (event) {
      target = event[2];
      if (event[1] === 'TRACE' || /log filter: (?:.*,)?trace(?:,|$)/.test(plain)) out.trace = true;
    } else if (plain.startsWith('=== ')) {
      target = ''; // the harness's header: not a server's event
    }
    const found = scanLine(raw, secrets, target);
    if (found.length) {
      const ctx = context(raw, found);
      for (const f of found) out.findings.push({ line: out.lines, ...f, context: ctx });
    }
  }
  return out;
}

/** Scans every `*.log` in `dir`; prints a report; resolves with the exit code. */
export async function scanDir(dir, { requireTrace = false, print = console.log } = {}) {
  if (!fs.existsSync(dir)) {
    print(`scan-logs: ${dir} does not exist: nothing to scan`);
    return 2;
  }
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.log') && !f.startsWith('.')).sort();
  if (files.length === 0) {
    print(`scan-logs: no *.log in ${dir}: nothing to scan`);
    return 2;
  }
  const secrets = loadSecrets(dir);
  let findings = 0;
  let lines = 0;
  const untraced = [];
  for (const name of files) {
    const r = await scanFile(path.join(dir, name), secrets);
    lines += r.lines;
    if (!r.trace) untraced.push(name);
    findings += r.findings.length;
    for (const f of r.findings.slice(0, PRINT_PER_FILE)) {
      print(`${name}:${f.line}:${f.col}: ${f.kind}: ${mask(f.text)}\n    ${f.context}`);
    }
    if (r.findings.length > PRINT_PER_FILE) print(`${name}: … and ${r.findings.length - PRINT_PER_FILE} more`);
  }
  print(`scan-logs: ${files.length} log(s), ${lines} line(s), ${secrets.length} secret(s) looked for: ${findings} finding(s)`);
  if (requireTrace && untraced.length) {
    print(`scan-logs: not at trace level (no TRACE line), so their scan proves little: ${untraced.join(', ')}`);
    return 1;
  }
  return findings ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const requireTrace = args.includes('--require-trace');
  const rest = args.filter((a) => a !== '--require-trace');
  if (rest.some((a) => a.startsWith('-')) || rest.length > 1) {
    console.error('usage: node scan-logs.mjs [--require-trace] [DIR]');
    process.exit(2);
  }
  const dir = rest[0] ?? process.env.RF_LOG_DIR ?? path.join(ROOT, 'logs');
  process.exitCode = await scanDir(dir, { requireTrace });
}

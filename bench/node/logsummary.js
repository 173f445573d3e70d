'use strict';
// Summarises a Caddy JSON log for run.sh: the alipay handler's events by
// level, outcome and reason, and any other line at warn or above (Caddy's
// fixed startup notices aside).
//
//   node logsummary.js caddy.log [title]

const fs = require('node:fs');

const [file, title = file] = process.argv.slice(2);
const startup = /^(admin endpoint disabled|HTTP\/[23] skipped because it requires TLS)$/;
const events = new Map();
const other = new Map();
const bump = (m, k) => m.set(k, (m.get(k) || 0) + 1);

let lines = 0;
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  if (!line) continue;
  lines++;
  let e;
  try {
    e = JSON.parse(line);
  } catch {
    bump(other, 'not JSON: ' + line.slice(0, 160));
    continue;
  }
  if (e.logger === 'http.handlers.alipay' && e.event) {
    bump(events, `${e.level} ${e.event}/${e.outcome}` +
      (e.upstream_status ? ` upstream_status=${e.upstream_status}` : '') +
      (e.reason ? ` (${e.reason})` : ''));
  } else if (e.level !== 'info' && e.level !== 'debug' && !startup.test(e.msg)) {
    bump(other, `${e.level} ${e.logger || '-'}: ${e.msg}` + (e.error ? `: ${e.error}` : ''));
  }
}
console.log(`${title}: ${lines} lines`);
for (const m of [events, other]) {
  for (const [k, n] of [...m].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${String(n).padStart(9)}  ${k}`);
  }
}

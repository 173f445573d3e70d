'use strict';
// Test driver for api_call.js: one JSON command {method, biz, secret, base} on stdin, the answer on stdout.
// The snippet's error (a rejection) exits 3.
const { alipayApi } = require('../api_call.js');

const cmd = JSON.parse(require('fs').readFileSync(0, 'utf8'));
alipayApi(cmd.method, cmd.biz, cmd.secret, cmd.base).then(
  (out) => process.stdout.write(JSON.stringify(out)),
  (e) => {
    process.stderr.write(`${e.name}: ${e.message}\n`);
    process.exit(3);
  },
);

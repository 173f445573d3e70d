'use strict';
// Test driver: one JSON command on stdin, the result on stdout. A refusal (a throw from verify) exits 3.
const { makePayToken, payUrl } = require('../pay_token.js');
const { verifyAlipayToken } = require('../verify_token.js');

const cmd = JSON.parse(require('fs').readFileSync(0, 'utf8'));
if (cmd.op === 'make') {
  process.stdout.write(makePayToken(cmd.order, cmd.secret, cmd.ttl));
} else if (cmd.op === 'url') {
  process.stdout.write(payUrl(cmd.order, cmd.secret));
} else if (cmd.op === 'verify') {
  let claims;
  try {
    claims = verifyAlipayToken(cmd.token, cmd.secret, cmd.app_id);
  } catch (e) {
    process.stderr.write(`${e.name}: ${e.message}\n`);
    process.exit(3);
  }
  process.stdout.write(JSON.stringify(claims));
} else {
  process.stderr.write('unknown op\n');
  process.exit(2);
}

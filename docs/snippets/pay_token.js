'use strict';
const crypto = require('crypto');

// An HS256 JWT of the order, signed with the secret shared with Caddy.
// order: { out_trade_no, total_amount: '88.80' (a string), subject, product: 'page' | 'wap' (optional) }
function makePayToken(order, secret, ttl = 300) {
  const b64 = (s) => Buffer.from(s).toString('base64url');
  const head = b64('{"alg":"HS256","typ":"JWT"}');
  const body = b64(JSON.stringify({ ...order, exp: Math.floor(Date.now() / 1000) + ttl }));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// The link that starts the payment: send the buyer's browser there.
function payUrl(order, secret) {
  return '/alipay/pay?token=' + makePayToken(order, secret);
}

module.exports = { makePayToken, payUrl };

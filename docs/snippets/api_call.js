'use strict';
const { makePayToken } = require('./pay_token.js'); // the pay-token snippet above

// Calls Alipay's OpenAPI through the sidecar at base ('https://shop.example.com'); Node 18+.
// biz is the method's biz_content; the answer is the method's response (read its code: '10000' is success).
// A refund, which a retry with the same out_request_no cannot repeat:
//   await alipayApi('alipay.trade.refund', { out_trade_no: 'T20240520001', refund_amount: '10.00',
//     out_request_no: 'R1' }, secret, 'https://shop.example.com');
async function alipayApi(method, biz, secret, base) {
  const res = await fetch(`${base}/alipay/api/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${makePayToken({ scope: 'api' }, secret, 300)}` },
    body: JSON.stringify(biz),
    signal: AbortSignal.timeout(90000), // a barcode payment lasts up to barcode_wait (60 s) and its cancels
  });
  const out = await res.json().catch(() => ({}));
  if (res.status !== 200) {
    throw new Error(`alipay api ${res.status}: ${out.error}` + (out.code ? ` (${out.code} ${out.msg})` : ''));
  }
  return out;
}

module.exports = { alipayApi };

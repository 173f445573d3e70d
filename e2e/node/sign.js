'use strict';
// Signs page-pay requests with Alipay's official Node.js SDK (alipay-sdk,
// pageExecute), as a shop that uses the SDK does, for the sandbox to check.
//
//   node sign.js '<JSON array of requests>'
//
// Each request: { id, http: 'GET' | 'POST', out_trade_no, total_amount,
// subject, notify_url?, return_url? }. Prints a JSON array of
// { id, url } (GET: the gateway URL with the signed query) or
// { id, form } (POST: the HTML form that the SDK makes, which a browser
// submits to the gateway).
//
// Environment: APP_ID, APP_PRIVATE_KEY (path, PKCS#1 PEM), ALIPAY_PUBLIC_KEY
// (path, PEM), GATEWAY (the sandbox's gateway URL).

const fs = require('node:fs');
const { AlipaySdk } = require('alipay-sdk');

const sdk = new AlipaySdk({
  appId: process.env.APP_ID,
  privateKey: fs.readFileSync(process.env.APP_PRIVATE_KEY, 'ascii'),
  alipayPublicKey: fs.readFileSync(process.env.ALIPAY_PUBLIC_KEY, 'ascii'),
  gateway: process.env.GATEWAY,
  signType: 'RSA2',
});

const requests = JSON.parse(process.argv[2]);
const out = requests.map((r) => {
  const params = {
    bizContent: {
      out_trade_no: r.out_trade_no,
      total_amount: r.total_amount,
      subject: r.subject,
      product_code: 'FAST_INSTANT_TRADE_PAY',
    },
  };
  if (r.notify_url) params.notifyUrl = r.notify_url;
  if (r.return_url) params.returnUrl = r.return_url;
  const result = sdk.pageExecute('alipay.trade.page.pay', r.http, params);
  return r.http === 'GET' ? { id: r.id, url: result } : { id: r.id, form: result };
});
process.stdout.write(JSON.stringify(out) + '\n');

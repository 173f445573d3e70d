'use strict';
// A shop's notify_url and return_url that verify the sandbox's callbacks
// with Alipay's official Node.js SDK (alipay-sdk): checkNotifySign and
// checkNotifySignV2, with the sandbox's public key as Alipay's. A
// notification is answered `success` only if both verify, `fail` otherwise.
//
//   POST /notify   a notification (form body)
//   GET  /return   the buyer's return (query)
//   GET  /results  what it received so far, as JSON
//
// Environment: PORT (on 127.0.0.1), APP_ID, APP_PRIVATE_KEY (path; the SDK
// requires one), ALIPAY_PUBLIC_KEY (path, PEM).

const fs = require('node:fs');
const http = require('node:http');
const { AlipaySdk } = require('alipay-sdk');

const sdk = new AlipaySdk({
  appId: process.env.APP_ID,
  privateKey: fs.readFileSync(process.env.APP_PRIVATE_KEY, 'ascii'),
  alipayPublicKey: fs.readFileSync(process.env.ALIPAY_PUBLIC_KEY, 'ascii'),
  signType: 'RSA2',
});

const results = [];

function check(kind, params) {
  const r = {
    kind,
    v1: sdk.checkNotifySign({ ...params }),
    v2: sdk.checkNotifySignV2({ ...params }),
    params,
  };
  r.ok = r.v1 && r.v2 && params.app_id === process.env.APP_ID;
  results.push(r);
  console.log(JSON.stringify({ kind, v1: r.v1, v2: r.v2, ok: r.ok, out_trade_no: params.out_trade_no }));
  return r.ok;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'POST' && url.pathname === '/notify') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      const ok = check('notify', params);
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(ok ? 'success' : 'fail');
    });
    return;
  }
  if (req.method === 'GET' && url.pathname === '/return') {
    const ok = check('return', Object.fromEntries(url.searchParams));
    res.writeHead(ok ? 200 : 400, { 'Content-Type': 'text/plain' });
    res.end(ok ? 'verified\n' : 'not verified\n');
    return;
  }
  if (req.method === 'GET' && url.pathname === '/results') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(results));
    return;
  }
  res.writeHead(404);
  res.end();
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${process.env.PORT}/`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

'use strict';
// Makes testdata/facetoface_vectors.json with Alipay's official Node.js SDK
// (alipay-sdk 4.14.0): an app-pay order string (sdkExecute
// alipay.trade.app.pay), and the requests that exec sends for
// alipay.trade.precreate and alipay.trade.pay (barcode), captured by a
// loopback HTTP server that this script starts and points the SDK's
// gateway at. The test keys in testdata/keys, app_id 2021000000000001, and
// the clock frozen at 2024-05-20 13:14:15 Beijing time make the output
// the same on every run (RSA PKCS#1 v1.5 signatures are deterministic).
//
//   node facetoface_vectors.js [out.json]
//
// Writes out.json (default ../../testdata/facetoface_vectors.json) and
// prints it. Each signature is checked with the app's public key against
// the string to sign written next to it before anything is written.

// The SDK formats the timestamp in the process's local zone: set it before
// anything reads the clock.
process.env.TZ = 'Asia/Shanghai';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { AlipaySdk } = require('alipay-sdk');

const APP_ID = '2021000000000001';
const TIMESTAMP = '2024-05-20 13:14:15';
const FROZEN = Date.UTC(2024, 4, 20, 5, 14, 15); // 13:14:15 at UTC+8
const NOTIFY_URL = 'https://shop.example.com/alipay/notify';

const root = path.join(__dirname, '..', '..');
const keyFile = (name) => fs.readFileSync(path.join(root, 'testdata', 'keys', name), 'ascii');
const out = process.argv[2] || path.join(root, 'testdata', 'facetoface_vectors.json');

// Freeze Date: new Date() and Date.now() give FROZEN; with arguments it is
// the ordinary Date.
const RealDate = Date;
class FrozenDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(FROZEN);
    else super(...args);
  }
  static now() {
    return FROZEN;
  }
}
global.Date = FrozenDate;
if (new Date().getTimezoneOffset() !== -480) {
  throw new Error('no Asia/Shanghai zone data: the timestamp would not be Beijing time');
}

// stringToSign is what every SDK signs: all parameters but sign, sorted
// by key, raw values.
function stringToSign(params) {
  return Object.keys(params).filter((k) => k !== 'sign').sort()
    .map((k) => `${k}=${params[k]}`).join('&');
}

function check(name, params, s) {
  if (params.timestamp !== TIMESTAMP) throw new Error(`${name}: timestamp ${params.timestamp}`);
  const ok = crypto.createVerify('RSA-SHA256').update(s, 'utf8')
    .verify(keyFile('app_public_key.pem'), params.sign, 'base64');
  if (!ok) throw new Error(`${name}: sign does not verify over the string to sign`);
}

// The loopback gateway: records each request, answers a business failure
// that the SDK returns without throwing.
const captured = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const u = new URL(req.url, 'http://127.0.0.1');
    const body = Buffer.concat(chunks).toString('utf8');
    const method = u.searchParams.get('method') || '';
    captured.push({
      http_method: req.method,
      path: u.pathname,
      raw_query: u.search.slice(1),
      content_type: req.headers['content-type'] || '',
      raw_body: body,
    });
    res.writeHead(200, { 'Content-Type': 'text/html;charset=utf-8' });
    res.end(JSON.stringify({
      [`${method.replaceAll('.', '_')}_response`]: {
        code: '40004', msg: 'Business Failed', sub_code: 'ACQ.VECTOR_CAPTURE', sub_msg: 'request recorded',
      },
    }));
  });
});

// exec posts the common parameters in the URL query and the rest
// (biz_content) in the form body; the gateway reads both as one set.
async function capture(sdk, method, params) {
  const n = captured.length;
  await sdk.exec(method, params);
  const c = captured[n];
  if (!c) throw new Error(`${method}: nothing reached the loopback gateway`);
  const query = Object.fromEntries(new URLSearchParams(c.raw_query));
  const body = Object.fromEntries(new URLSearchParams(c.raw_body));
  const received = { ...query, ...body };
  const s = stringToSign(received);
  check(method, received, s);
  return {
    method,
    input: params,
    http_method: c.http_method,
    path: c.path,
    content_type: c.content_type,
    raw_query: c.raw_query,
    raw_body: c.raw_body,
    query_params: query,
    body_params: body,
    params_as_received_by_gateway: received,
    string_to_sign: s,
    sign: received.sign,
  };
}

async function main() {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sdk = new AlipaySdk({
    appId: APP_ID,
    privateKey: keyFile('app_private_key_pkcs1.pem'),
    alipayPublicKey: keyFile('alipay_public_key.pem'),
    gateway: `http://127.0.0.1:${server.address().port}/gateway.do`,
    signType: 'RSA2',
  });

  // (a) App pay: the order string that the shop's app hands to Alipay's
  // app SDK.
  const appInput = {
    notifyUrl: NOTIFY_URL,
    bizContent: {
      out_trade_no: '20240520131415000002',
      total_amount: '88.88',
      subject: '测试商品 App',
      product_code: 'QUICK_MSECURITY_PAY',
    },
  };
  const orderString = sdk.sdkExecute('alipay.trade.app.pay', appInput);
  const appParams = {};
  const keyOrder = [];
  for (const pair of orderString.split('&')) {
    const i = pair.indexOf('=');
    const k = decodeURIComponent(pair.slice(0, i));
    appParams[k] = decodeURIComponent(pair.slice(i + 1));
    keyOrder.push(k);
  }
  const appString = stringToSign(appParams);
  check('alipay.trade.app.pay', appParams, appString);

  // (b) Precreate and (c) barcode pay, as exec sends them.
  const precreate = await capture(sdk, 'alipay.trade.precreate', {
    notifyUrl: NOTIFY_URL,
    bizContent: {
      out_trade_no: '20240520131415000003',
      total_amount: '12.30',
      subject: '当面付 扫码',
    },
  });
  const barcode = await capture(sdk, 'alipay.trade.pay', {
    bizContent: {
      out_trade_no: '20240520131415000004',
      total_amount: '0.01',
      subject: '当面付 条码',
      scene: 'bar_code',
      auth_code: '280000000000000000',
      product_code: 'FACE_TO_FACE_PAYMENT',
    },
  });
  server.close();

  const doc = {
    _about: 'Made by e2e/node/facetoface_vectors.js with alipay-sdk 4.14.0, the test keys in testdata/keys '
      + `(app_private_key_pkcs1.pem signs), app_id ${APP_ID}, the clock frozen at ${TIMESTAMP} (Asia/Shanghai). `
      + 'string_to_sign: every parameter but sign, sorted by key, raw values, sign_type included; '
      + 'sign: RSA2 (SHA256withRSA, PKCS#1 v1.5) over its UTF-8 bytes, base64. The SDK sends no format parameter.',
    app_pay: {
      note: "sdk.sdkExecute('alipay.trade.app.pay', {notifyUrl, bizContent}): k=encodeURIComponent(v) joined by &, "
        + 'in the SDK\'s insertion order (not sorted), sign last; a space is %20.',
      method: 'alipay.trade.app.pay',
      input: appInput,
      order_string: orderString,
      key_order: keyOrder,
      params_as_received_by_gateway: appParams,
      string_to_sign: appString,
      sign: appParams.sign,
    },
    precreate: { note: "await sdk.exec('alipay.trade.precreate', {notifyUrl, bizContent})", ...precreate },
    barcode_pay: { note: "await sdk.exec('alipay.trade.pay', {bizContent}) (no notify_url)", ...barcode },
  };
  const text = JSON.stringify(doc, null, 2) + '\n';
  fs.writeFileSync(out, text);
  process.stdout.write(text);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

'use strict';
// Makes testdata/v3_vectors.json with Alipay's official Node.js SDK
// (alipay-sdk 4.14.0): the OpenAPI v3 request that its curl() sends for
// alipay.trade.query, captured by a loopback HTTP server that this script
// starts and points the SDK at, and that server's signed answer, which
// the SDK verifies before the script writes anything. The test keys in
// testdata/keys, app_id 2021000000000001, a fixed nonce and the clock
// frozen at 2024-05-20 13:14:15 Beijing time make the output the same on
// every run (RSA PKCS#1 v1.5 signatures are deterministic).
//
//   node v3_vectors.js [out.json]

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const FROZEN = Date.UTC(2024, 4, 20, 5, 14, 15); // 13:14:15 at UTC+8
const NONCE = '5f4dcc3b-5aa7-4d0e-9f3b-2a1c9e6b7d80';
Date.now = () => FROZEN;
crypto.randomUUID = () => NONCE; // the SDK reads it from this module at each call

const { AlipaySdk } = require('alipay-sdk');

const APP_ID = '2021000000000001';
const root = path.join(__dirname, '..', '..');
const keyFile = (name) => fs.readFileSync(path.join(root, 'testdata', 'keys', name), 'ascii');
const out = process.argv[2] || path.join(root, 'testdata', 'v3_vectors.json');

// The answer, as Alipay signs one: <alipay-timestamp>\n<alipay-nonce>\n<body>\n.
const ANSWER = '{"out_trade_no":"20150320010101001","trade_no":"2024052022001400000000000001","trade_status":"TRADE_SUCCESS","total_amount":"88.88","buyer_logon_id":"测***@example.com"}';
const ANSWER_TS = String(FROZEN + 120);
const ANSWER_NONCE = 'a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6';
const answerSign = crypto.createSign('RSA-SHA256')
  .update(`${ANSWER_TS}\n${ANSWER_NONCE}\n${ANSWER}\n`, 'utf8').sign(keyFile('alipay_private_key_pkcs1.pem'), 'base64');

let captured;
const server = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    captured = { method: req.method, path: req.url, headers: req.headers, body };
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'alipay-timestamp': ANSWER_TS, 'alipay-nonce': ANSWER_NONCE, 'alipay-signature': answerSign,
    });
    res.end(ANSWER);
  });
});

server.listen(0, '127.0.0.1', async () => {
  try {
    const sdk = new AlipaySdk({
      appId: APP_ID,
      privateKey: keyFile('app_private_key_pkcs1.pem'),
      alipayPublicKey: keyFile('alipay_public_key.pem'),
      endpoint: `http://127.0.0.1:${server.address().port}`,
    });
    const result = await sdk.curl('POST', '/v3/alipay/trade/query', { body: { out_trade_no: '20150320010101001' } });
    const auth = captured.headers.authorization;
    const m = /^ALIPAY-SHA256withRSA (.*),sign=([^,]+)$/.exec(auth);
    if (!m) throw new Error('unexpected authorization: ' + auth);
    const signString = `${m[1]}\n${captured.method}\n${captured.path}\n${captured.body}\n`;
    if (!crypto.createVerify('RSA-SHA256').update(signString, 'utf8').verify(keyFile('app_public_key.pem'), m[2], 'base64')) {
      throw new Error('the SDK signature does not verify over the string to sign written here');
    }
    const doc = {
      _about: 'Made by e2e/node/v3_vectors.js with alipay-sdk 4.14.0 (curl, OpenAPI v3) and the keys of testdata/keys; regenerate with: cd e2e/node && node v3_vectors.js',
      request: {
        method: captured.method, path: captured.path, body: captured.body,
        content_type: captured.headers['content-type'],
        authorization: auth, auth_string: m[1], string_to_sign: signString, sign: m[2],
      },
      response: {
        body: ANSWER, alipay_timestamp: ANSWER_TS, alipay_nonce: ANSWER_NONCE, alipay_signature: answerSign,
        string_to_sign: `${ANSWER_TS}\n${ANSWER_NONCE}\n${ANSWER}\n`, sdk_accepted: result.responseHttpStatus === 200,
      },
    };
    const text = JSON.stringify(doc, null, 2) + '\n';
    fs.writeFileSync(out, text);
    process.stdout.write(text);
  } finally {
    server.close();
  }
});

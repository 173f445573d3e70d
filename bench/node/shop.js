'use strict';
// The baseline: a Node.js shop that verifies Alipay's asynchronous
// notifications in-app with the official SDK (alipay-sdk, checkNotifySignV2),
// on plain node:http, no framework. It does no business work: verify,
// check app_id (as the sidecar does), answer `success`.
//
// Environment:
//   PORT               listen port on 127.0.0.1 (required)
//   APP_ID             default 2021000000000001
//   APP_PRIVATE_KEY    path to the app private key (PKCS#1 PEM); the SDK
//                      requires one even though verifying does not use it
//   ALIPAY_PUBLIC_KEY  path to Alipay's public key (PEM)
//   NODE_WORKERS       1 (default): one process, as shops usually run;
//                      N > 1: node:cluster with N workers
//   CHECK              V2 (default) = checkNotifySignV2, V1 = checkNotifySign

const cluster = require('node:cluster');
const fs = require('node:fs');
const http = require('node:http');
const { AlipaySdk } = require('alipay-sdk');

const port = Number(process.env.PORT);
if (!port) {
  console.error('shop.js: PORT is required');
  process.exit(2);
}
const workers = Math.max(1, Number(process.env.NODE_WORKERS || 1));

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    console.error(`shop.js: worker ${w.process.pid} exited (${signal || code})`);
    process.exit(1);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
      process.exit(0);
    });
  }
} else {
  serve();
}

function serve() {
  const appId = process.env.APP_ID || '2021000000000001';
  const sdk = new AlipaySdk({
    appId,
    privateKey: fs.readFileSync(process.env.APP_PRIVATE_KEY, 'ascii'),
    alipayPublicKey: fs.readFileSync(process.env.ALIPAY_PUBLIC_KEY, 'ascii'),
    signType: 'RSA2',
  });
  const check = process.env.CHECK === 'V1'
    ? (p) => sdk.checkNotifySign(p)
    : (p) => sdk.checkNotifySignV2(p);
  const maxBody = 64 << 10;

  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/alipay/notify') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > maxBody) {
        res.writeHead(413, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
        res.end('fail');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (res.writableEnded) return;
      // Form decoding: '+' is a space, %XX a byte (UTF-8 here).
      const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      let ok = false;
      try {
        ok = check(params) && params.app_id === appId;
      } catch (e) {
        ok = false;
      }
      res.writeHead(ok ? 200 : 400, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(ok ? 'success' : 'fail');
    });
  });
  // Longer than any client's idle time, so a kept-alive connection is never
  // closed under a client that is about to reuse it.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  server.listen(port, '127.0.0.1');
}

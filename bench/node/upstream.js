'use strict';
// The shop behind the sidecar: the same business work as shop.js (none),
// but no verification, since Caddy's alipay handler did it. It answers 200
// and the body success (the acknowledgement that Caddy needs to answer
// Alipay success) to whatever it gets on /alipay/notify, after reading the
// body.
//
// Environment: PORT (required), NODE_WORKERS (1 by default; N > 1 uses
// node:cluster), REQUIRE_TOKEN=1 to answer 403 when X-Alipay-Token is
// missing (a check that the sidecar forwarded, not a verification).

const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.env.PORT);
if (!port) {
  console.error('upstream.js: PORT is required');
  process.exit(2);
}
const workers = Math.max(1, Number(process.env.NODE_WORKERS || 1));
const requireToken = process.env.REQUIRE_TOKEN === '1';

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    console.error(`upstream.js: worker ${w.process.pid} exited (${signal || code})`);
    process.exit(1);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
      process.exit(0);
    });
  }
} else {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (requireToken && !req.headers['x-alipay-token']) {
        res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('no token');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('success');
    });
  });
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  server.listen(port, '127.0.0.1');
}

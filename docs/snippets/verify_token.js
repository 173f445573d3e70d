'use strict';
const crypto = require('crypto');

// Checks an X-Alipay-Token (req.get('X-Alipay-Token')) and returns its claims; throws if it is not good.
function verifyAlipayToken(token, secret, appId) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  const [head, body, sig] = parts;
  const mac = Buffer.from(crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url'));
  if (mac.length !== Buffer.byteLength(sig) || !crypto.timingSafeEqual(mac, Buffer.from(sig))) {
    throw new Error('bad signature');
  }
  const json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString());
  if (json(head).alg !== 'HS256') throw new Error('alg is not HS256');
  const claims = json(body);
  if (claims.iss !== 'caddy-alipay' || claims.aud !== appId) throw new Error('not for this app');
  if (!(Date.now() / 1000 < claims.exp + 60)) throw new Error('expired'); // 60 s of leeway for clock skew
  return claims;
}

module.exports = { verifyAlipayToken };

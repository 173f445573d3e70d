<?php
// The README snippets, verbatim: docs/snippets/pay_token.php and docs/snippets/verify_token.php.

// A pay token is an HS256 JWT of the order, signed with the secret shared with Caddy.
// $order: out_trade_no, total_amount as a string ('88.80'), subject, optional product ('page', 'wap', 'app' or 'qr').
function make_pay_token(array $order, string $secret, int $ttl = 300): string
{
    $b64 = fn (string $s): string => rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
    $head = $b64('{"alg":"HS256","typ":"JWT"}');
    $body = $b64(json_encode(array_merge($order, ['exp' => time() + $ttl]), JSON_THROW_ON_ERROR));
    return "$head.$body." . $b64(hash_hmac('sha256', "$head.$body", $secret, true));
}

// The link that starts the payment: send the buyer's browser there.
function pay_url(array $order, string $secret): string
{
    return '/alipay/pay?token=' . make_pay_token($order, $secret);
}

// Checks an X-Alipay-Token ($_SERVER['HTTP_X_ALIPAY_TOKEN'] ?? '') and returns its claims.
// Throws UnexpectedValueException if the token is not good.
function verify_alipay_token(string $token, string $secret, string $appId): array
{
    if (substr_count($token, '.') !== 2) {
        throw new UnexpectedValueException('not a JWT');
    }
    [$head, $body, $sig] = explode('.', $token);
    $mac = rtrim(strtr(base64_encode(hash_hmac('sha256', "$head.$body", $secret, true)), '+/', '-_'), '=');
    if (!hash_equals($mac, $sig)) {
        throw new UnexpectedValueException('bad signature');
    }
    $header = json_decode(base64_decode(strtr($head, '-_', '+/')), true);
    if (($header['alg'] ?? '') !== 'HS256') {
        throw new UnexpectedValueException('alg is not HS256');
    }
    $claims = json_decode(base64_decode(strtr($body, '-_', '+/')), true);
    if (($claims['iss'] ?? '') !== 'caddy-alipay' || ($claims['aud'] ?? '') !== $appId) {
        throw new UnexpectedValueException('not for this app');
    }
    if (time() >= ($claims['exp'] ?? 0) + 60) { // 60 s of leeway for clock skew
        throw new UnexpectedValueException('expired');
    }
    return $claims;
}

<?php
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

<?php
// composer require firebase/php-jwt
use Firebase\JWT\JWT;
use Firebase\JWT\Key;

// Checks an X-Alipay-Token ($_SERVER['HTTP_X_ALIPAY_TOKEN'] ?? '') and returns its claims.
// Throws (UnexpectedValueException and its kin) if the token is not good.
function verify_alipay_token(string $token, string $secret, string $appId): array
{
    JWT::$leeway = 60; // seconds of clock skew
    // Checks the signature, that alg is HS256, and exp if present.
    $claims = json_decode(json_encode(JWT::decode($token, new Key($secret, 'HS256'))), true);
    if (($claims['iss'] ?? '') !== 'caddy-alipay' || ($claims['aud'] ?? '') !== $appId) {
        throw new UnexpectedValueException('not for this app');
    }
    if (!isset($claims['exp'])) {
        throw new UnexpectedValueException('no exp');
    }
    return $claims;
}

<?php
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

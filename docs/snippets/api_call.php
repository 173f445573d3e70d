<?php
// Calls Alipay's OpenAPI through the sidecar at $base ('https://shop.example.com'), with make_pay_token() from above.
// $biz is the method's biz_content; the answer is the method's response (read its 'code': '10000' is success).
// A refund, which a retry with the same out_request_no cannot repeat:
//   alipay_api('alipay.trade.refund', ['out_trade_no' => 'T20240520001', 'refund_amount' => '10.00',
//       'out_request_no' => 'R1'], $secret, 'https://shop.example.com');
function alipay_api(string $method, array $biz, string $secret, string $base): array
{
    $body = @file_get_contents("$base/alipay/api/$method", false, stream_context_create(['http' => [
        'method' => 'POST',
        'header' => "Content-Type: application/json\r\nAuthorization: Bearer " . make_pay_token(['scope' => 'api'], $secret, 300),
        'content' => json_encode($biz, JSON_THROW_ON_ERROR),
        'ignore_errors' => true, // the body of an error status too
        'timeout' => 90, // a barcode payment lasts up to barcode_wait (60 s) and its cancels
    ]]));
    $status = (int) explode(' ', $http_response_header[0] ?? 'HTTP 0')[1];
    $out = json_decode((string) $body, true);
    if ($status !== 200 || !is_array($out)) {
        $why = ($out['error'] ?? 'no answer') . (isset($out['code'], $out['msg']) ? " ({$out['code']} {$out['msg']})" : '');
        throw new RuntimeException("alipay api $status: $why");
    }
    return $out;
}

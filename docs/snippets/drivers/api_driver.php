<?php
// Test driver for api_call.php: one JSON command {method, biz, secret, base} on stdin, the answer on stdout.
// The snippet's error (RuntimeException) exits 3; any warning or other error is a crash.
set_error_handler(function ($severity, $message, $file, $line) {
    throw new ErrorException($message, 0, $severity, $file, $line);
});
require __DIR__ . '/../pay_token.php';
require __DIR__ . '/../api_call.php';

$in = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
try {
    $out = alipay_api($in['method'], $in['biz'], $in['secret'], $in['base']);
} catch (RuntimeException $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(3);
}
echo json_encode($out, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE);

<?php
// Test driver: one JSON command on stdin, the result on stdout.
// A refusal (UnexpectedValueException) exits 3; any warning or other error is a crash.
set_error_handler(function ($severity, $message, $file, $line) {
    throw new ErrorException($message, 0, $severity, $file, $line);
});
require __DIR__ . '/../pay_token.php';
require __DIR__ . '/../verify_token.php';

$in = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
try {
    switch ($in['op']) {
        case 'make':
            echo make_pay_token($in['order'], $in['secret'], $in['ttl']);
            break;
        case 'url':
            echo pay_url($in['order'], $in['secret']);
            break;
        case 'verify':
            echo json_encode(verify_alipay_token($in['token'], $in['secret'], $in['app_id']), JSON_THROW_ON_ERROR);
            break;
        default:
            fwrite(STDERR, "unknown op\n");
            exit(2);
    }
} catch (UnexpectedValueException $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(3);
}

<?php
// Test driver for verify_token_firebase.php: one JSON verify command on stdin, the claims on stdout.
// Needs firebase/php-jwt: PHP_JWT_AUTOLOAD is the path of a Composer vendor/autoload.php that has it.
// A refusal (UnexpectedValueException or DomainException, as php-jwt throws) exits 3; anything else is a crash.
set_error_handler(function ($severity, $message, $file, $line) {
    throw new ErrorException($message, 0, $severity, $file, $line);
});
require getenv('PHP_JWT_AUTOLOAD');
require __DIR__ . '/../verify_token_firebase.php';

$in = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
if ($in['op'] !== 'verify') {
    fwrite(STDERR, "unknown op\n");
    exit(2);
}
try {
    echo json_encode(verify_alipay_token($in['token'], $in['secret'], $in['app_id']), JSON_THROW_ON_ERROR);
} catch (UnexpectedValueException | DomainException $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(3);
}

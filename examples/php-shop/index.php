<?php
// A demo shop behind caddy-alipay: plain PHP 8.2 and PDO sqlite, no framework.
//
// Caddy (with the alipay handler) sits in front of it and does all of Alipay's
// cryptography. The shop signs its orders into pay tokens and checks the
// X-Alipay-Token that Caddy adds to verified callbacks, with the README's
// snippets (alipay_token.php). Serve it on loopback only, through Caddy:
//
//   php -S 127.0.0.1:8001 examples/php-shop/index.php
//
// Environment:
//   SHOP_SECRET    the secret shared with Caddy, at least 32 bytes (required)
//   ALIPAY_APP_ID  the app's APPID at Alipay, the token's aud (required)
//   SHOP_DB        sqlite file (default shop.db beside this file)
//   SHOP_PAY_TTL   pay token lifetime in seconds (default 900)
//   SHOP_SIDECAR_URL  where the shop reaches Caddy's API (default http://127.0.0.1:8080)

declare(strict_types=1);

require __DIR__ . '/alipay_token.php';

// Prices are strings of yuan with 2 decimals; the buyer never sends one.
const PRODUCTS = [
    'sticker' => ['name' => 'Sticker', 'amount' => '0.01'],
    'mug' => ['name' => 'Coffee mug', 'amount' => '9.90'],
    'tea' => ['name' => '西湖龙井 Longjing tea, 250 g', 'amount' => '88.80'],
];
const PAID_STATUSES = ['TRADE_SUCCESS', 'TRADE_FINISHED'];
// Alipay's notification after a refund is the trade's trade_status_sync again,
// with these fields: refund_fee (the total refunded so far), gmt_refund and
// out_biz_no (the refund's out_request_no). Its trade_status is TRADE_SUCCESS
// after a partial refund, TRADE_CLOSED after a full one: never a payment.
const REFUND_FIELDS = ['refund_fee', 'out_biz_no', 'gmt_refund'];

const SCHEMA = <<<'SQL'
CREATE TABLE IF NOT EXISTS orders (
  out_trade_no TEXT PRIMARY KEY,
  product      TEXT NOT NULL,
  subject      TEXT NOT NULL,
  total_amount TEXT NOT NULL,              -- "9.90"
  status       TEXT NOT NULL,              -- unpaid | paid | refunded
  created_at   TEXT NOT NULL,
  paid_at      TEXT,
  trade_no     TEXT,                       -- Alipay's, from the paying notification
  returned_at  TEXT,                       -- the buyer came back from Alipay
  notify_calls INTEGER NOT NULL DEFAULT 0, -- notify requests with a valid token
  refund_fee   TEXT,                       -- "9.90" once refunded (Alipay's refund_fee)
  refund_notified_at TEXT                  -- the first refund notification
);
-- One row per notification (jti = notify_id), written in the transaction
-- that acts on it, so a repeat is recognised and a rolled-back one is not.
CREATE TABLE IF NOT EXISTS notifications (
  jti          TEXT PRIMARY KEY,
  out_trade_no TEXT NOT NULL,
  outcome      TEXT NOT NULL,  -- paid | already_paid | amount_mismatch | unknown_order | not_paid_status,
                               -- or a refund's: refunded | refund_recorded | refund_partial | refund_unpaid | refund_unknown_order
  trade_status TEXT NOT NULL,
  total_amount TEXT NOT NULL,
  received_at  TEXT NOT NULL,
  exp          INTEGER NOT NULL
);
SQL;

function shop_log(string $msg): void
{
    file_put_contents('php://stderr', "shop: $msg\n");
}

function config(): array
{
    $secret = (string) getenv('SHOP_SECRET');
    $appId = (string) getenv('ALIPAY_APP_ID');
    if (strlen($secret) < 32 || $appId === '') {
        shop_log('SHOP_SECRET (at least 32 bytes) and ALIPAY_APP_ID must be set');
        send(500, 'shop misconfigured', 'text/plain');
        exit;
    }
    return [
        'secret' => $secret,
        'app_id' => $appId,
        'db' => getenv('SHOP_DB') ?: __DIR__ . '/shop.db',
        'pay_ttl' => (int) (getenv('SHOP_PAY_TTL') ?: 900),
        'sidecar' => rtrim(getenv('SHOP_SIDECAR_URL') ?: 'http://127.0.0.1:8080', '/'),
    ];
}

function db(string $path): PDO
{
    $pdo = new PDO("sqlite:$path", null, null, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
        PDO::ATTR_TIMEOUT => 10, // busy timeout, seconds
    ]);
    $pdo->exec('PRAGMA journal_mode=WAL');
    $pdo->exec(SCHEMA);
    $columns = $pdo->query('PRAGMA table_info(orders)')->fetchAll(PDO::FETCH_COLUMN, 1);
    foreach (['refund_fee', 'refund_notified_at'] as $column) { // a database from before refunds
        if (!in_array($column, $columns, true)) {
            $pdo->exec("ALTER TABLE orders ADD COLUMN $column TEXT");
        }
    }
    return $pdo;
}

function now_iso(): string
{
    return gmdate('Y-m-d\TH:i:s\Z');
}

// "88.8" -> "88.80"; null unless a plain decimal of yuan with at most 2 decimals.
function normalize_amount(mixed $s): ?string
{
    if (!is_string($s) || !preg_match('/^([0-9]{1,9})(?:\.([0-9]{1,2}))?$/D', $s, $m)) {
        return null;
    }
    return (int) $m[1] . '.' . str_pad($m[2] ?? '', 2, '0');
}

// The larger of two amounts (either may be null): Alipay's refund_fee only grows,
// so a late notification of an earlier refund never lowers the shop's record.
function larger_amount(?string $a, ?string $b): ?string
{
    if ($a === null || $b === null) {
        return $a ?? $b;
    }
    return compare_amounts($a, $b) >= 0 ? $a : $b;
}

// Compares two amounts as normalize_amount() writes them ("9.90"): as whole fen.
function compare_amounts(string $a, string $b): int
{
    return (int) str_replace('.', '', $a) <=> (int) str_replace('.', '', $b);
}

function is_refund_notification(array $p): bool
{
    return count(array_intersect(REFUND_FIELDS, array_keys($p))) > 0;
}

// What a refund notification means for the order $o (null: unknown). It never pays:
// an unpaid order stays unpaid, a refunded one refunded.
function refund_outcome(?array $o, array $p): string
{
    if (!$o) {
        return 'refund_unknown_order';
    }
    if ($o['status'] === 'unpaid') {
        return 'refund_unpaid'; // a refund of a payment the shop never saw: someone must look
    }
    $full = ($p['trade_status'] ?? '') === 'TRADE_CLOSED'
        || normalize_amount($p['refund_fee'] ?? null) === normalize_amount($o['total_amount']);
    if (!$full) {
        return 'refund_partial'; // recorded; the order keeps its status
    }
    return $o['status'] === 'paid' ? 'refunded' : 'refund_recorded'; // refunded: the API's answer came first
}

function get_order(PDO $pdo, string $no): ?array
{
    $st = $pdo->prepare('SELECT * FROM orders WHERE out_trade_no = ?');
    $st->execute([$no]);
    return $st->fetch() ?: null;
}

function paying_notifications(PDO $pdo, string $no): int
{
    $st = $pdo->prepare("SELECT COUNT(*) FROM notifications WHERE out_trade_no = ? AND outcome = 'paid'");
    $st->execute([$no]);
    return (int) $st->fetchColumn();
}

function refund_notifications(PDO $pdo, string $no): int
{
    $st = $pdo->prepare("SELECT COUNT(*) FROM notifications WHERE out_trade_no = ? AND outcome LIKE 'refund%'");
    $st->execute([$no]);
    return (int) $st->fetchColumn();
}

// POSTs biz_content to the sidecar's {prefix}/api/<method>; returns Alipay's verified answer.
// Throws RuntimeException with a message for the buyer when the call itself failed.
function call_api(array $conf, string $method, array $biz): array
{
    $ctx = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => "Content-Type: application/json\r\n"
            . 'Authorization: Bearer ' . make_pay_token(['scope' => 'api'], $conf['secret'], 300) . "\r\n",
        'content' => json_encode($biz, JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR),
        'timeout' => 20,
        'ignore_errors' => true, // read the {"error": ...} of a 4xx/5xx too
        'follow_location' => 0,
    ]]);
    $body = @file_get_contents($conf['sidecar'] . '/alipay/api/' . $method, false, $ctx);
    if ($body === false || !isset($http_response_header[0])) {
        throw new RuntimeException('the payment service could not be reached: '
            . (error_get_last()['message'] ?? 'no answer'));
    }
    $status = preg_match('#^HTTP/\S+ (\d{3})#', $http_response_header[0], $m) ? (int) $m[1] : 0;
    $doc = json_decode($body, true);
    if ($status !== 200) {
        $doc = is_array($doc) ? $doc : [];
        $msg = implode(' ', array_filter([$doc['error'] ?? null, $doc['sub_msg'] ?? null], 'is_string'));
        throw new RuntimeException("the payment service answered HTTP $status: " . ($msg ?: 'no details'));
    }
    if (!is_array($doc) || array_is_list($doc)) {
        throw new RuntimeException("the payment service's answer is not a JSON object");
    }
    return $doc;
}

// --- HTTP and HTML -----------------------------------------------------------

function e(mixed $s): string
{
    return htmlspecialchars((string) $s, ENT_QUOTES | ENT_SUBSTITUTE | ENT_HTML5, 'UTF-8');
}

function send(int $status, string $body, string $type = 'text/html; charset=utf-8', array $headers = []): void
{
    http_response_code($status);
    header("Content-Type: $type");
    header('Content-Length: ' . strlen($body));
    header('Cache-Control: no-store');
    foreach ($headers as $h) {
        header($h);
    }
    echo $body;
}

function redirect(string $location): void
{
    send(303, '', 'text/plain', ["Location: $location"]);
}

function page(string $title, string $body, bool $refresh = false): string
{
    $meta = $refresh ? '<meta http-equiv="refresh" content="2">' : '';
    $title = e($title);
    return <<<HTML
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">$meta
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>$title · demo shop</title>
        <style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.5}
        li{margin:.5em 0} form{display:inline} .amount{font-weight:bold}</style>
        </head><body>
        <p><a href="/">Demo shop</a> (PHP)</p>
        $body
        </body></html>

        HTML;
}

function error_page(int $status, string $msg): void
{
    send($status, page($msg, '<h1>' . e($msg) . '</h1>'));
}

// The verified X-Alipay-Token's claims, or null. Only these are trusted.
function token_claims(array $conf, string $event): ?array
{
    try {
        $c = verify_alipay_token($_SERVER['HTTP_X_ALIPAY_TOKEN'] ?? '', $conf['secret'], $conf['app_id']);
        $params = $c['params'] ?? null;
        $ok = ($c['event'] ?? null) === $event && is_string($c['jti'] ?? null) && $c['jti'] !== ''
            && is_array($params) && count(array_filter($params, 'is_string')) === count($params);
        if (!$ok) {
            throw new UnexpectedValueException("not a $event token");
        }
        return $c;
    } catch (Throwable $e) { // any malformed token is refused alike
        shop_log("$event: refused X-Alipay-Token: " . $e->getMessage());
        return null;
    }
}

// --- the shop ----------------------------------------------------------------

function products(): void
{
    $items = '';
    foreach (PRODUCTS as $pid => $p) {
        $items .= '<li>' . e($p['name']) . ': <span class="amount">¥' . e($p['amount']) . '</span> '
            . '<form method="post" action="/orders"><input type="hidden" name="product" value="' . e($pid) . '">'
            . '<button type="submit" id="buy-' . e($pid) . '">Buy</button></form></li>' . "\n";
    }
    send(200, page('Products', "<h1>Products</h1>\n<ul>\n$items</ul>"));
}

function create_order(PDO $pdo): void
{
    $pid = $_POST['product'] ?? '';
    if (!is_string($pid) || !isset(PRODUCTS[$pid])) {
        error_page(400, 'Unknown product');
        return;
    }
    $no = 'T' . strtoupper(bin2hex(random_bytes(12)));
    $pdo->prepare("INSERT INTO orders (out_trade_no, product, subject, total_amount, status, created_at)"
        . " VALUES (?, ?, ?, ?, 'unpaid', ?)")
        ->execute([$no, $pid, PRODUCTS[$pid]['name'], PRODUCTS[$pid]['amount'], now_iso()]);
    redirect("/orders/$no");
}

function order_page(PDO $pdo, array $conf, string $no, int $status = 200, ?string $refundError = null): void
{
    $o = get_order($pdo, $no);
    if (!$o) {
        error_page(404, 'No such order');
        return;
    }
    $rows = '<p>Order <code id="order">' . e($no) . "</code></p>\n"
        . '<p>' . e($o['subject']) . ': <span class="amount" id="amount">¥' . e($o['total_amount']) . "</span></p>\n"
        . '<p>Status: <strong id="status">' . e($o['status']) . "</strong></p>\n";
    $confirming = $o['status'] === 'unpaid' && $o['returned_at'] !== null;
    if ($refundError !== null) {
        $rows .= '<p id="refund-error">The refund failed: ' . e($refundError) . "</p>\n";
    }
    if ($o['status'] === 'paid') {
        $rows .= '<p>Paid at ' . e($o['paid_at']) . ". Thank you!</p>\n"
            . '<form method="post" action="/orders/' . e($no) . '/refund">'
            . '<button type="submit" id="refund">Refund ¥' . e($o['total_amount']) . "</button></form>\n";
    } elseif ($o['status'] === 'refunded') {
        $rows .= '<p>Refunded: <span class="amount" id="refund-fee">¥' . e($o['refund_fee']) . "</span></p>\n";
    } else {
        if ($confirming) {
            $rows .= '<p id="confirming">You are back from Alipay: the payment is being confirmed. '
                . "This page refreshes itself.</p>\n";
        }
        // A fresh pay token on each view; the amount comes from the database.
        $token = make_pay_token([
            'out_trade_no' => $no, 'total_amount' => $o['total_amount'],
            'subject' => $o['subject'], 'product' => 'page',
        ], $conf['secret'], $conf['pay_ttl']);
        $rows .= '<p><a id="pay" href="' . e('/alipay/pay?token=' . $token) . '">Pay with Alipay</a></p>' . "\n";
    }
    send($status, page("Order $no", "<h1>Your order</h1>\n$rows", $confirming));
}

function order_json(PDO $pdo, string $no): void
{
    $o = get_order($pdo, $no);
    if (!$o) {
        send(404, '{"error":"not found"}', 'application/json');
        return;
    }
    send(200, json_encode([
        'out_trade_no' => $o['out_trade_no'],
        'total_amount' => $o['total_amount'],
        'status' => $o['status'],
        'notifications' => paying_notifications($pdo, $no),
        'notify_calls' => (int) $o['notify_calls'],
        'paid_at' => $o['paid_at'],
        'trade_no' => $o['trade_no'],
        'refund_fee' => $o['refund_fee'],
        'refund_notifications' => refund_notifications($pdo, $no),
        'refund_notified_at' => $o['refund_notified_at'],
    ], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR), 'application/json');
}

// The notification. Answers the body success only once the order is saved (or the
// notification is a repeat of one already done): Caddy then answers Alipay success.
// Any other answer makes Caddy answer fail (a 2xx without success too), and Alipay
// sends the notification again. A refund's notification (refund_fee, out_biz_no) is
// recorded, never taken for a payment, whatever its trade_status says.
function notify(PDO $pdo, array $conf): void
{
    $c = token_claims($conf, 'notify'); // the raw form body is ignored: only the token counts
    if ($c === null) {
        send(403, "forbidden\n", 'text/plain');
        return;
    }
    $p = $c['params'];
    $no = $p['out_trade_no'] ?? '';
    $status = $p['trade_status'] ?? '';
    $amount = $p['total_amount'] ?? '';
    $pdo->exec('BEGIN IMMEDIATE'); // one writer: the check and the update are atomic
    try {
        $o = get_order($pdo, $no);
        if ($o) {
            $pdo->prepare('UPDATE orders SET notify_calls = notify_calls + 1 WHERE out_trade_no = ?')->execute([$no]);
        }
        $seen = $pdo->prepare('SELECT 1 FROM notifications WHERE jti = ?');
        $seen->execute([$c['jti']]);
        if ($seen->fetchColumn()) {
            $pdo->exec('COMMIT');
            send(200, 'success', 'text/plain'); // a repeat: already done
            return;
        }
        if (is_refund_notification($p)) {
            // After a refund (the shop's, or one made elsewhere): record it, never pay.
            $outcome = refund_outcome($o, $p);
            if ($o && $outcome !== 'refund_unpaid') {
                $pdo->prepare('UPDATE orders SET refund_fee = ?, refund_notified_at = COALESCE(refund_notified_at, ?)'
                    . ' WHERE out_trade_no = ?')
                    ->execute([larger_amount($o['refund_fee'], normalize_amount($p['refund_fee'] ?? null)), now_iso(), $no]);
            }
            if ($outcome === 'refunded') { // refunded in full, but not through this shop's button (or before its answer)
                $pdo->prepare("UPDATE orders SET status = 'refunded' WHERE out_trade_no = ? AND status = 'paid'")->execute([$no]);
            }
        } elseif (!$o) {
            $outcome = 'unknown_order';
        } elseif (normalize_amount($amount) !== normalize_amount($o['total_amount'])) {
            $outcome = 'amount_mismatch';
        } elseif (!in_array($status, PAID_STATUSES, true)) {
            $outcome = 'not_paid_status';
        } elseif ($o['status'] !== 'unpaid') {
            $outcome = 'already_paid'; // e.g. TRADE_FINISHED after TRADE_SUCCESS
        } else {
            $outcome = 'paid';
            $pdo->prepare("UPDATE orders SET status = 'paid', paid_at = ?, trade_no = ?"
                . " WHERE out_trade_no = ? AND status = 'unpaid'")
                ->execute([now_iso(), $p['trade_no'] ?? null, $no]);
        }
        $pdo->prepare('INSERT INTO notifications (jti, out_trade_no, outcome, trade_status, total_amount, received_at, exp)'
            . ' VALUES (?, ?, ?, ?, ?, ?, ?)')
            ->execute([$c['jti'], $no, $outcome, $status, $amount, now_iso(), (int) ($c['exp'] ?? 0)]);
        $pdo->exec('COMMIT');
    } catch (Throwable $e) {
        try {
            $pdo->exec('ROLLBACK');
        } catch (Throwable) {
        }
        throw $e;
    }
    if (in_array($outcome, ['unknown_order', 'amount_mismatch', 'refund_unknown_order', 'refund_unpaid'], true)) {
        // Answered success all the same: a retry would not change it. Someone must look.
        shop_log(sprintf('notify %s: %s: out_trade_no=%s total_amount=%s trade_status=%s refund_fee=%s',
            $c['jti'], $outcome, json_encode($no), json_encode($amount), json_encode($status),
            json_encode($p['refund_fee'] ?? null)));
    }
    send(200, 'success', 'text/plain'); // Caddy answers Alipay success: no more retries
}

// Refunds a paid order in full. The out_request_no is fixed per order, so Alipay
// refunds once however often this runs (a double click, a retry after an error).
function refund(PDO $pdo, array $conf, string $no): void
{
    $o = get_order($pdo, $no);
    if (!$o) {
        error_page(404, 'No such order');
        return;
    }
    if ($o['status'] !== 'paid') {
        order_page($pdo, $conf, $no, 409, "only a paid order can be refunded (this one is {$o['status']})");
        return;
    }
    try {
        $r = call_api($conf, 'alipay.trade.refund', [
            'out_trade_no' => $no, 'refund_amount' => $o['total_amount'], 'out_request_no' => "$no-R1"]);
        if (($r['code'] ?? null) !== '10000') {
            throw new RuntimeException(sprintf('%s (%s)', $r['sub_msg'] ?? $r['msg'] ?? '', $r['sub_code'] ?? $r['code'] ?? ''));
        }
    } catch (RuntimeException $err) {
        shop_log("refund $no: " . $err->getMessage());
        order_page($pdo, $conf, $no, 502, $err->getMessage());
        return;
    }
    $fee = normalize_amount($r['refund_fee'] ?? null) ?? $o['total_amount'];
    $pdo->prepare("UPDATE orders SET status = 'refunded', refund_fee = ? WHERE out_trade_no = ? AND status = 'paid'")
        ->execute([$fee, $no]);
    redirect("/orders/$no");
}

function alipay_return(PDO $pdo, array $conf): void
{
    $c = token_claims($conf, 'return');
    if ($c === null) {
        error_page(403, 'Forbidden');
        return;
    }
    $no = $c['params']['out_trade_no'] ?? '';
    if (!preg_match('/^[A-Za-z0-9_]{1,64}$/D', $no)) {
        error_page(400, 'Bad return');
        return;
    }
    // The return proves nothing about payment: only note it.
    $pdo->prepare('UPDATE orders SET returned_at = ? WHERE out_trade_no = ? AND returned_at IS NULL')
        ->execute([now_iso(), $no]);
    redirect("/orders/$no");
}

// --- the router (php -S runs this file for every request) ---------------------

$conf = config();
$pdo = db($conf['db']);
$method = $_SERVER['REQUEST_METHOD'];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?: '/';
$get = $method === 'GET' || $method === 'HEAD';

if ($get && $path === '/') {
    products();
} elseif ($method === 'POST' && $path === '/orders') {
    create_order($pdo);
} elseif ($get && preg_match('#^/orders/([A-Za-z0-9_]{1,64})(\.json)?$#D', $path, $m)) {
    isset($m[2]) ? order_json($pdo, $m[1]) : order_page($pdo, $conf, $m[1]);
} elseif ($method === 'POST' && preg_match('#^/orders/([A-Za-z0-9_]{1,64})/refund$#D', $path, $m)) {
    refund($pdo, $conf, $m[1]);
} elseif ($method === 'POST' && $path === '/alipay/notify') {
    notify($pdo, $conf);
} elseif ($get && $path === '/alipay/return') {
    alipay_return($pdo, $conf);
} else {
    error_page(404, 'Not found');
}

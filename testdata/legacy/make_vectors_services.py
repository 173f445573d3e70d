"""The legacy services after a payment, for make_vectors.py: single_trade_query,
close_trade and refund_fastpay_by_platform_nopwd (the shop's API, POSTed
server to server), refund_fastpay_by_platform_pwd (a GET link for the
seller), the batch_refund_notify that reports a refund batch's result, and
samples of the gateway's XML answers.

Every case is signed with make_vectors.py's port of seed 002 (params_filter,
build_mysign) or with openssl, through the helpers of make_vectors.py, which
passes itself in as `h`. Not run on its own.
"""

import datetime
import os
import sys
from decimal import Decimal
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

# The day of the refunds: batch_no must start with it (yyyyMMdd, Beijing).
REFUND_DATE = '2024-05-21 10:20:30'
BATCH_DAY = '20240521'
REFUND_NOTIFY_URL = 'https://shop.example.com/alipay/refund-notify'
REFUND_NOTIFY_TIME = '2024-05-21 10:21:05'
BEIJING = datetime.timezone(datetime.timedelta(hours=8))

# Alipay's own refund_fastpay_by_platform_pwd MD5 example: its string to sign
# and its sign, for that partner and key. The port must reproduce it.
DOC_KEY = '10000000000000000000000000000000'
DOC_STRING = ('_input_charset=utf-8&batch_no=123456789&batch_num=1&detail_data=1^0.01^test'
              '&notify_url=/some_url&partner=1000000000000000&refund_date=2015-01-01 00:00:00'
              '&seller_user_id=1000000000000000&service=refund_fastpay_by_platform_pwd')
DOC_SIGN = 'def57a58e1ac21f70c45e41bd3697368'


def check_doc_vector(h):
    """Stops the run unless the port signs Alipay's example as Alipay did."""
    h.settings.ALIPAY_INPUT_CHARSET = 'utf-8'
    params = dict(kv.split('=', 1) for kv in DOC_STRING.split('&'))
    _, prestr = h.params_filter(params)
    if prestr != DOC_STRING.encode('utf-8') or h.build_mysign(prestr, DOC_KEY) != DOC_SIGN:
        sys.exit('make_vectors: the port does not reproduce the refund_fastpay_by_platform_pwd example')


def unix(beijing_time):
    t = datetime.datetime.strptime(beijing_time, '%Y-%m-%d %H:%M:%S')
    return int(t.replace(tzinfo=BEIJING).timestamp())


def yuan(amount):
    """An amount as detail_data writes it: 2 decimals, never through a float."""
    return str(Decimal(str(amount)).quantize(Decimal('0.01')))


def join_refunds(refunds):
    """detail_data: trade_no^amount^reason, # between items."""
    return '#'.join('%s^%s^%s' % (r['trade_no'], yuan(r['amount']), r['reason'])
                    for r in refunds)


def signed_query(h, fields, sign, sign_type):
    """What params_filter kept, then sign and sign_type, through urlencode
    (quote_plus per byte of the charset), as seed 002 builds its URL."""
    params, _ = h.params_filter(dict(fields))
    charset = h.settings.ALIPAY_INPUT_CHARSET
    params[b'sign'] = h.smart_str(sign, charset)
    params[b'sign_type'] = h.smart_str(sign_type, charset)
    return urlencode(params)


def service_fields(h, service, charset, fields):
    return [('service', service), ('partner', h.PARTNER),
            ('_input_charset', charset)] + fields


def api_case(h, name, service, sign_type, charset, fields, shop_body,
             site_notify_url=None, keyname=None):
    """A call of the shop's API: the JSON the shop posts, and the signed form
    that goes to the gateway (POST, _input_charset also in the URL)."""
    keyname = keyname or h.APP_PRIVATE
    fields = service_fields(h, service, charset, fields)
    case, _ = h.base_case(name, 'api', sign_type, charset, keyname, fields)
    case['service'] = service
    case['post_url'] = h._GATEWAY + urlencode({'_input_charset': charset})
    case['post_body'] = signed_query(h, fields, case['sign'], sign_type)
    case['content_type'] = 'application/x-www-form-urlencoded; charset=' + charset
    case['shop_body'] = shop_body
    if site_notify_url:
        case['site_notify_url'] = site_notify_url
    return case


def refund_url_case(h, name, sign_type, charset, fields, claims,
                    site_notify_url, keyname=None):
    """refund_fastpay_by_platform_pwd: the refund token's claims, and the
    signed gateway URL that the seller's browser is sent to."""
    keyname = keyname or h.APP_PRIVATE
    service = 'refund_fastpay_by_platform_pwd'
    fields = service_fields(h, service, charset, fields)
    case, _ = h.base_case(name, 'refund_url', sign_type, charset, keyname, fields)
    case['service'] = service
    case['gateway_url'] = h._GATEWAY + signed_query(h, fields, case['sign'], sign_type)
    case['token_claims'] = claims
    case['site_notify_url'] = site_notify_url
    return case


def refund_fields(h, batch_no, detail, count, notify_url, seller=None):
    return [
        seller or ('seller_user_id', h.PARTNER),
        ('refund_date', REFUND_DATE),
        ('batch_no', batch_no),
        ('batch_num', str(count)),
        ('detail_data', detail),
        ('notify_url', notify_url),
    ]


def refund_claims(batch_no, jti, **refund):
    iat = unix(REFUND_DATE)
    return dict(scope='refund', iat=iat, exp=iat + 300, jti=jti, batch_no=batch_no, **refund)


def batch_refund_notify_fields(batch_no, details, notify_id):
    success = sum(1 for d in details.split('#') if d.split('$')[0].endswith('^SUCCESS'))
    return [
        ('notify_time', REFUND_NOTIFY_TIME),
        ('notify_type', 'batch_refund_notify'),
        ('notify_id', notify_id),
        ('batch_no', batch_no),
        ('success_num', str(success)),
        ('result_details', details),
    ]


def cases(h):
    check_doc_vector(h)
    out = []
    U1, G1, U3, G3 = h.U1, h.G1, h.U3, h.G3
    seller_email = ('seller_email', h.SELLER_EMAIL)

    # single_trade_query and close_trade: one trade, by either number.
    out.append(api_case(h, 'md5_single_trade_query_utf8', 'single_trade_query', 'MD5', 'utf-8',
                        [('out_trade_no', U1[0])], {'out_trade_no': U1[0]}))
    out.append(api_case(h, 'rsa_single_trade_query_gbk', 'single_trade_query', 'RSA', 'gbk',
                        [('trade_no', G3[1])], {'trade_no': G3[1]}))
    out.append(api_case(h, 'md5_close_trade_gbk', 'close_trade', 'MD5', 'gbk',
                        [('out_order_no', G1[0])], {'out_order_no': G1[0]}))
    out.append(api_case(h, 'rsa_close_trade_utf8', 'close_trade', 'RSA', 'utf-8',
                        [('trade_no', U3[1])], {'trade_no': U3[1]}))

    # refund_fastpay_by_platform_nopwd: refunds joined by the sidecar (one
    # amount a JSON number), or the shop's own detail_data.
    refunds = [{'trade_no': U1[1], 'amount': 10, 'reason': '部分退款 颜色不符'},
               {'trade_no': U3[1], 'amount': '12.30', 'reason': '全额退款'}]
    batch = BATCH_DAY + '0001'
    out.append(api_case(h, 'md5_refund_nopwd_utf8', 'refund_fastpay_by_platform_nopwd', 'MD5', 'utf-8',
                        refund_fields(h, batch, join_refunds(refunds), 2, h.NOTIFY_URL),
                        {'batch_no': batch, 'refunds': refunds}, site_notify_url=h.NOTIFY_URL))
    detail = '%s^0.01^會員價 退款（王堃）' % G1[1]
    batch = BATCH_DAY + 'G0002'
    out.append(api_case(h, 'md5_refund_nopwd_gbk_seller_email', 'refund_fastpay_by_platform_nopwd', 'MD5', 'gbk',
                        refund_fields(h, batch, detail, 1, h.NOTIFY_URL, seller_email),
                        {'batch_no': batch, 'detail_data': detail}, site_notify_url=h.NOTIFY_URL))
    refunds = [{'trade_no': G3[1], 'amount': '4.1', 'reason': '退运费 會員價'}]
    batch = BATCH_DAY + '000000000000000000000003'
    out.append(api_case(h, 'rsa_refund_nopwd_gbk', 'refund_fastpay_by_platform_nopwd', 'RSA', 'gbk',
                        refund_fields(h, batch, join_refunds(refunds), 1, REFUND_NOTIFY_URL),
                        {'batch_no': batch, 'refunds': refunds, 'notify_url': REFUND_NOTIFY_URL},
                        site_notify_url=h.NOTIFY_URL))

    # refund_fastpay_by_platform_pwd: the seller's link, from a refund token.
    refunds = [{'trade_no': U1[1], 'amount': '88.88', 'reason': '买家取消订单'}]
    batch = BATCH_DAY + 'P01'
    out.append(refund_url_case(h, 'md5_refund_pwd_utf8', 'MD5', 'utf-8',
                               refund_fields(h, batch, join_refunds(refunds), 1, h.NOTIFY_URL),
                               refund_claims(batch, 'r-0001', refunds=refunds), h.NOTIFY_URL))
    detail = '%s^0.01^會員價（王堃）协商退款' % G1[1]
    batch = BATCH_DAY + 'P02'
    out.append(refund_url_case(h, 'md5_refund_pwd_gbk_seller_email', 'MD5', 'gbk',
                               refund_fields(h, batch, detail, 1, REFUND_NOTIFY_URL, seller_email),
                               refund_claims(batch, 'r-0002', detail_data=detail, notify_url=REFUND_NOTIFY_URL),
                               h.NOTIFY_URL))
    refunds = [{'trade_no': U3[1], 'amount': '12.3', 'reason': 'RSA 退款'},
               {'trade_no': G3[1], 'amount': 1, 'reason': 'refund 1 yuan'}]
    batch = BATCH_DAY + 'P03'
    out.append(refund_url_case(h, 'rsa_refund_pwd_utf8', 'RSA', 'utf-8',
                               refund_fields(h, batch, join_refunds(refunds), 2, h.NOTIFY_URL),
                               refund_claims(batch, 'r-0003', refunds=refunds), h.NOTIFY_URL))

    # batch_refund_notify: the results, one a fee refund ($...), one an
    # error code; no seller_id or seller_email, as Alipay sends them.
    fee = '$%s^%s^0.01^SUCCESS' % (h.SELLER_EMAIL, h.PARTNER)
    for name, sign_type, charset, batch, details, notify_id, key in [
        ('md5_batch_refund_notify_utf8', 'MD5', 'utf-8', BATCH_DAY + '0001',
         '%s^10.00^SUCCESS#%s^12.30^SUCCESS' % (U1[1], U3[1]), 'e1a2b3c4d5e6f708192a3b4c5d6e7f80hm', None),
        ('md5_batch_refund_notify_gbk', 'MD5', 'gbk', BATCH_DAY + 'G0002',
         '%s^0.01^SUCCESS%s' % (G1[1], fee), 'e2a2b3c4d5e6f708192a3b4c5d6e7f81hm', None),
        ('rsa_batch_refund_notify_utf8', 'RSA', 'utf-8', BATCH_DAY + 'P03',
         '%s^12.30^SUCCESS#%s^1.00^REFUND_AMOUNT_NOT_VALID' % (U3[1], G3[1]),
         'e3a2b3c4d5e6f708192a3b4c5d6e7f82hm', None),
        ('rsa1024_batch_refund_notify_gbk', 'RSA', 'gbk', BATCH_DAY + '000000000000000000000003',
         '%s^4.10^SUCCESS' % G3[1], 'e4a2b3c4d5e6f708192a3b4c5d6e7f83hm', h.ALIPAY1024_PRIVATE),
    ]:
        fields = batch_refund_notify_fields(batch, details, notify_id)
        out.append(h.notify_case(name, sign_type, charset, fields, key or h.ALIPAY_PRIVATE))
    return out


# ---------------------------------------------------------------------------
# The gateway's XML answers, in the shapes of Alipay's documentation. An
# element is (name, text) or (name, [elements]); a <request> parameter is
# ('param', name, text). <sign> is a made-up value: how Alipay signs these
# answers is not documented.
# ---------------------------------------------------------------------------

def trade(h, order, status, total_fee):
    out_trade_no, trade_no, subject, body, _ = order
    return ('trade', [
        ('body', body), ('buyer_email', h.BUYER_EMAIL), ('buyer_id', h.BUYER_ID),
        ('discount', '0.00'), ('gmt_create', h.GMT_CREATE), ('gmt_payment', h.GMT_PAYMENT),
        ('is_total_fee_adjust', 'F'), ('out_trade_no', out_trade_no), ('payment_type', '1'),
        ('price', total_fee), ('quantity', '1'), ('seller_email', h.SELLER_EMAIL),
        ('seller_id', h.PARTNER), ('subject', subject), ('total_fee', total_fee),
        ('trade_no', trade_no), ('trade_status', status), ('use_coupon', 'F'),
    ])


def query_answer(h, order, charset, status, sign):
    return [
        ('is_success', 'T'),
        ('request', [('param', '_input_charset', charset), ('param', 'service', 'single_trade_query'),
                     ('param', 'partner', h.PARTNER), ('param', 'out_trade_no', order[0])]),
        ('response', [trade(h, order, status, order[4])]),
        ('sign', sign),
        ('sign_type', 'MD5'),
    ]


def to_xml(elements, indent):
    out = []
    pad = '\n' + '  ' * indent if indent is not None else ''
    for e in elements:
        if e[0] == 'param':
            out.append('%s<param name=%s>%s</param>' % (pad, quoteattr(e[1]), escape(e[2])))
        elif isinstance(e[1], list):
            inner = to_xml(e[1], None if indent is None else indent + 1)
            out.append('%s<%s>%s%s</%s>' % (pad, e[0], inner, pad, e[0]))
        else:
            out.append('%s<%s>%s</%s>' % (pad, e[0], escape(e[1]), e[0]))
    return ''.join(out)


def to_json(elements):
    obj = {}
    for e in elements:
        if e[0] == 'param':
            name, value = e[1], e[2]
        else:
            name, value = e[0], to_json(e[1]) if isinstance(e[1], list) else e[1]
        if name in obj:
            obj[name] = (obj[name] if isinstance(obj[name], list) else [obj[name]]) + [value]
        else:
            obj[name] = value
    return obj


def answers(h):
    """Writes answers/*.xml and returns their entries for vectors.json."""
    sign = lambda name: h.md5(b'not a real sign ' + name.encode()).hexdigest()
    samples = [
        # name, service, declared encoding (None: no declaration), indented, elements
        ('single_trade_query_utf8', 'single_trade_query', 'utf-8', True,
         query_answer(h, h.U1, 'utf-8', 'TRADE_SUCCESS', sign('u'))),
        ('single_trade_query_gbk', 'single_trade_query', 'GBK', True,
         query_answer(h, h.G1, 'gbk', 'TRADE_FINISHED', sign('g'))),
        ('single_trade_query_gb2312', 'single_trade_query', 'gb2312', False,
         query_answer(h, h.U2, 'gbk', 'TRADE_CLOSED', sign('g2'))),
        ('single_trade_query_not_exist', 'single_trade_query', 'utf-8', False,
         [('is_success', 'F'), ('error', 'TRADE_NOT_EXIST')]),
        ('close_trade_success', 'close_trade', 'utf-8', False, [('is_success', 'T')]),
        ('close_trade_not_availd_gbk', 'close_trade', 'GBK', False,
         [('is_success', 'F'), ('error', 'TRADE_STATUS_NOT_AVAILD')]),
        ('refund_nopwd_success', 'refund_fastpay_by_platform_nopwd', None, False, [('is_success', 'T')]),
        ('refund_nopwd_duplicate_batch_no', 'refund_fastpay_by_platform_nopwd', 'utf-8', True,
         [('is_success', 'F'), ('error', 'DUPLICATE_BATCH_NO')]),
    ]
    folder = os.path.join(h.HERE, 'answers')
    os.makedirs(folder, exist_ok=True)
    entries = []
    for name, service, encoding, indented, elements in samples:
        text = '<alipay>%s%s</alipay>' % (to_xml(elements, 1 if indented else None), '\n' if indented else '')
        if encoding:
            text = '<?xml version="1.0" encoding="%s"?>\n%s' % (encoding, text)
        rel = 'legacy/answers/%s.xml' % name
        with open(os.path.join(h.TESTDATA, rel), 'wb') as f:
            f.write((text + '\n').encode(encoding or 'utf-8'))
        entries.append({'name': name, 'service': service, 'encoding': encoding or '',
                        'file': rel, 'json': to_json(elements)})
    return entries


NOTES = [
    'Kind api: a call of the shop\'s API ({prefix}/api/<service>). shop_body is '
    'the JSON the shop posts; params, string_to_sign and sign are what the '
    'sidecar sends: a POST to post_url (_input_charset also in the query) with '
    'post_body, the form (seed 002 urlencode style, in the charset). Refunds '
    'take notify_url from site_notify_url unless shop_body names one, and '
    'refund_date is the time of the call (Beijing).',
    'Kind refund_url: refund_fastpay_by_platform_pwd, the seller\'s link. '
    'token_claims are the refund token\'s claims (scope refund); gateway_url the '
    'signed GET the browser is sent to, built as for kind request.',
    'Refunds: detail_data is trade_no^amount^reason with # between items, the '
    'amount with 2 decimals (a JSON number 10 is 10.00); batch_num counts the '
    'items; batch_no is the refund day (yyyyMMdd, Beijing) and 3 to 24 letters '
    'or digits. Reasons in gbk cases are signed and sent as GBK bytes.',
    'batch_refund_notify: notify_time, notify_type, notify_id, batch_no, '
    'success_num, result_details (trade_no^amount^SUCCESS or an error code, # '
    'between items, $ before a fee refund); no seller_id or seller_email. The '
    'field order and the error code REFUND_AMOUNT_NOT_VALID are samples, not '
    'captures.',
    'answers: the gateway\'s XML answers (files under legacy/answers/, in the '
    'declared encoding; none declared is UTF-8) and the JSON the shop gets for '
    'each. Their <sign> values are made up: how Alipay signs these answers is '
    'not documented.',
    'The port reproduces Alipay\'s own refund_fastpay_by_platform_pwd MD5 '
    'example (partner 1000000000000000, key 1 and 31 zeros, sign '
    'def57a58e1ac21f70c45e41bd3697368); make_vectors.py stops if it does not.',
]

#!/usr/bin/env python3
"""Make testdata/legacy/vectors.json: fixed test vectors for Alipay's legacy
"instant arrival" protocol (即时到账, service=create_direct_pay_by_user on the
mapi gateway), signed with MD5 (partner key) or RSA (SHA1withRSA).

Run from the repository root:

    python3 testdata/legacy/make_vectors.py

Python 3 standard library plus the `openssl` command line. The MD5 signatures
come from seed 002's smart_str / params_filter / build_mysign, ported to
Python 3 below (every change is marked "PORT:"); the RSA signatures come from
`openssl dgst -sha1 -sign` over the very bytes params_filter returns. Output is
deterministic: every time, id and key is fixed, and PKCS#1 v1.5 signatures are
deterministic. The 1024-bit key pair next to this file was generated once and
is read, never regenerated, here. ALL KEYS ARE TEST KEYS.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from urllib.parse import urlencode

sys.dont_write_bytecode = True  # no __pycache__ in testdata/
import make_vectors_services as services  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.dirname(HERE)


# ---------------------------------------------------------------------------
# Seed 002 (alipay.py, hashcompat.py, config.py), ported to Python 3 once.
# Logic unchanged: sort the keys, drop sign, sign_type and empty values, join
# k=v with '&', bytes in the input charset, MD5 of prestr + key, lower hex.
# ---------------------------------------------------------------------------

# PORT: hashcompat.py only picked hashlib.md5 when hashlib existed (Python
# >= 2.5); in Python 3 it always does, so the fallback to the md5 module is gone.
md5 = hashlib.md5


class settings:  # config.py
    # PORT: the seed reads one global configuration; the vectors need several
    # charsets and keys, so generate() sets these fields before each case
    # instead of passing new arguments, and the functions below stay as they were.
    ALIPAY_KEY = ''
    ALIPAY_INPUT_CHARSET = 'utf-8'
    ALIPAY_SIGN_TYPE = 'MD5'


def smart_str(s, encoding='utf-8', strings_only=False, errors='strict'):
    # PORT: types.NoneType -> type(None) (types.NoneType is gone from Python
    # 3.0 to 3.9).
    if strings_only and isinstance(s, (type(None), int)):
        return s
    # PORT: basestring (Python 2 str or unicode) -> (str, bytes).
    if not isinstance(s, (str, bytes)):
        try:
            # PORT: Python 2 str(s) was already a byte string; Python 3 str(s)
            # is text, so encode it to keep returning bytes.
            return str(s).encode(encoding, errors)
        except UnicodeEncodeError:
            if isinstance(s, Exception):
                # PORT: Python 2 exceptions iterated over their args and
                # ' '.join joined byte strings; Python 3 needs s.args and b' '.
                return b' '.join([smart_str(arg, encoding, strings_only,
                                            errors) for arg in s.args])
            # PORT: unicode(s) -> str(s).
            return str(s).encode(encoding, errors)
    # PORT: unicode -> str (text); the next branch is Python 2 str -> bytes.
    elif isinstance(s, str):
        return s.encode(encoding, errors)
    elif s and encoding != 'utf-8':
        return s.decode('utf-8', errors).encode(encoding, errors)
    else:
        return s


_GATEWAY = 'https://mapi.alipay.com/gateway.do?'


def params_filter(params):
    # PORT: dict.keys() has no .sort() in Python 3; sorted() gives the same
    # list. The names are ASCII, so code-point order is byte order, as in Python 2.
    ks = sorted(params.keys())
    newparams = {}
    # PORT: '' -> b'': prestr is built from the charset bytes smart_str
    # returns (Python 2 str was bytes; Python 3 cannot add bytes to str).
    prestr = b''
    for k in ks:
        v = params[k]
        k = smart_str(k, settings.ALIPAY_INPUT_CHARSET)
        # PORT: k is bytes now, and Python 3 bytes never equal str, so the
        # names are b'sign' and b'sign_type'. v is compared with '' AND b''
        # because Python 2 had u'' == '' (a unicode or a byte-string value).
        if k not in (b'sign', b'sign_type') and v != '' and v != b'':
            newparams[k] = smart_str(v, settings.ALIPAY_INPUT_CHARSET)
            # PORT: bytes %-formatting (PEP 461) in place of Python 2 str %.
            prestr += b'%s=%s&' % (k, newparams[k])
    prestr = prestr[:-1]
    return newparams, prestr


def build_mysign(prestr, key, sign_type='MD5'):
    if sign_type == 'MD5':
        # PORT: config.py's key was a Python 2 byte string; a Python 3 str
        # key must become bytes before it is appended to the bytes prestr.
        # hexdigest() is lower-case hex in both.
        return md5(prestr + smart_str(key)).hexdigest()
    return ''


# ---------------------------------------------------------------------------
# End of the ported seed code. What follows is the vector generator itself.
# ---------------------------------------------------------------------------

PARTNER = '2088000000000001'        # 2088 + 12 digits, made up
SELLER_EMAIL = 'seller@example.com'
BUYER_ID = '2088102177846880'
BUYER_EMAIL = 'buyer@example.com'
NOTIFY_URL = 'https://shop.example.com/alipay/notify'
RETURN_URL = 'https://shop.example.com/alipay/return'
SHOW_URL = 'https://shop.example.com/goods/42'
NOTIFY_VERIFY = 'https://mapi.alipay.com/gateway.do?service=notify_verify'
EXTRA = 'uid=42&ref=a+b c'          # extra_common_param with & = + and a space
GMT_CREATE = '2024-05-20 13:14:30'
GMT_PAYMENT = '2024-05-20 13:15:02'
NOTIFY_TIME = '2024-05-20 13:15:03'
RETURN_NOTIFY_TIME = '2024-05-20 13:15:04'

MD5_KEY_FILE = 'legacy/md5_key.txt'
APP_PRIVATE = 'keys/app_private_key_pkcs1.pem'
APP_PUBLIC = 'keys/app_public_key.pem'
ALIPAY_PRIVATE = 'keys/alipay_private_key_pkcs1.pem'
ALIPAY_PUBLIC = 'keys/alipay_public_key.pem'
ALIPAY1024_PRIVATE = 'legacy/alipay_rsa1024_private.pem'
ALIPAY1024_PUBLIC = 'legacy/alipay_rsa1024_public.pem'
PUBLIC_OF = {
    APP_PRIVATE: APP_PUBLIC,
    ALIPAY_PRIVATE: ALIPAY_PUBLIC,
    ALIPAY1024_PRIVATE: ALIPAY1024_PUBLIC,
}

# Java's URLEncoder (what Alipay's servers and 2012 demo SDKs use) leaves
# these ASCII bytes as they are, writes a space as '+', and percent-encodes
# every byte of every other character (GBK trail bytes in the ASCII range too).
_JAVA_SAFE = frozenset(b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
                       b'0123456789.-*_')


def read_md5_key():
    with open(os.path.join(TESTDATA, MD5_KEY_FILE), encoding='ascii') as f:
        key = f.read().strip()
    if len(key) != 32 or not key.isalnum():
        sys.exit('make_vectors: %s must hold 32 letters and digits' % MD5_KEY_FILE)
    return key


def java_urlencode(pairs, charset):
    out = []
    for k, v in pairs:
        parts = []
        for text in (k, v):
            s = ''
            for ch in text:
                if ch == ' ':
                    s += '+'
                elif ord(ch) < 0x80 and ord(ch) in _JAVA_SAFE:
                    s += ch
                else:
                    s += ''.join('%%%02X' % b for b in ch.encode(charset))
            parts.append(s)
        out.append('%s=%s' % tuple(parts))
    return '&'.join(out)


def rsa_sign(data, keyfile):
    path = os.path.join(TESTDATA, keyfile)
    sig = subprocess.run(['openssl', 'dgst', '-sha1', '-sign', path],
                         input=data, stdout=subprocess.PIPE, check=True).stdout
    # Self-check with the public half, so a wrong key file stops the run.
    with tempfile.TemporaryDirectory() as tmp:
        sigfile = os.path.join(tmp, 'sig')
        with open(sigfile, 'wb') as f:
            f.write(sig)
        pub = os.path.join(TESTDATA, PUBLIC_OF[keyfile])
        subprocess.run(['openssl', 'dgst', '-sha1', '-verify', pub,
                        '-signature', sigfile], input=data,
                       stdout=subprocess.DEVNULL, check=True)
    return base64.b64encode(sig).decode('ascii')


def sign(prestr, sign_type, keyname):
    if sign_type == 'MD5':
        return build_mysign(prestr, settings.ALIPAY_KEY, 'MD5')
    return rsa_sign(prestr, keyname)


def base_case(name, kind, sign_type, charset, keyname, fields):
    """fields: (name, value) pairs, UTF-8 text, in the order they are sent."""
    settings.ALIPAY_INPUT_CHARSET = charset
    settings.ALIPAY_SIGN_TYPE = sign_type
    _, prestr = params_filter(dict(fields))
    case = {
        'name': name,
        'kind': kind,
        'sign_type': sign_type,
        'charset': charset,
        'key': 'md5' if sign_type == 'MD5' else keyname,
        'verify_key': 'md5' if sign_type == 'MD5' else PUBLIC_OF[keyname],
        'params': dict(fields),
        'string_to_sign': prestr.decode(charset),
        'string_to_sign_hex': prestr.hex(),
        'sign': sign(prestr, sign_type, keyname),
    }
    return case, prestr


def request_case(name, sign_type, charset, fields, keyname=APP_PRIVATE):
    """As seed 002's create_direct_pay_by_user: the URL carries exactly what
    params_filter kept (empty values are neither signed nor sent), then sign
    and sign_type, through urllib's urlencode (the seed used Python 2's)."""
    fields = [('_input_charset', charset)] + fields
    case, _ = base_case(name, 'request', sign_type, charset, keyname, fields)
    settings.ALIPAY_INPUT_CHARSET = charset
    params, _ = params_filter(dict(fields))
    params[b'sign'] = smart_str(case['sign'], charset)
    params[b'sign_type'] = smart_str(sign_type, charset)
    case['gateway_url'] = _GATEWAY + urlencode(params)
    case['dropped_empty'] = sorted(k for k, v in fields if v == '')
    case['params'] = {k: v for k, v in fields if v != ''}
    return case


def notify_case(name, sign_type, charset, fields, keyname=ALIPAY_PRIVATE):
    """A notify_url POST: every field (empty ones too) in Alipay's order,
    then sign_type and sign, Java-URLEncoded in the charset."""
    case, _ = base_case(name, 'notify', sign_type, charset, keyname, fields)
    body = fields + [('sign_type', sign_type), ('sign', case['sign'])]
    case['post_body'] = java_urlencode(body, charset)
    case['content_type'] = ('application/x-www-form-urlencoded; text/html; '
                            'charset=' + charset)
    case['notify_verify_url'] = '%s&partner=%s&notify_id=%s' % (
        NOTIFY_VERIFY, PARTNER, dict(fields)['notify_id'])
    return case


def return_case(name, sign_type, charset, fields, keyname=ALIPAY_PRIVATE):
    """A return_url GET: fields sorted by name, then sign and sign_type."""
    fields = sorted(fields)
    case, _ = base_case(name, 'return', sign_type, charset, keyname, fields)
    query = fields + [('sign', case['sign']), ('sign_type', sign_type)]
    case['query'] = java_urlencode(query, charset)
    case['notify_verify_url'] = '%s&partner=%s&notify_id=%s' % (
        NOTIFY_VERIFY, PARTNER, dict(fields)['notify_id'])
    return case


def notify_fields(out_trade_no, trade_no, subject, body, total_fee,
                  trade_status, notify_id):
    # The order of Alipay's own documented notify sample, gmt_close and
    # extra_common_param added before sign_type and sign.
    return [
        ('discount', '0.00'),
        ('payment_type', '1'),
        ('subject', subject),
        ('trade_no', trade_no),
        ('buyer_email', BUYER_EMAIL),
        ('gmt_create', GMT_CREATE),
        ('notify_type', 'trade_status_sync'),
        ('quantity', '1'),
        ('out_trade_no', out_trade_no),
        ('seller_id', PARTNER),
        ('notify_time', NOTIFY_TIME),
        ('body', body),
        ('trade_status', trade_status),
        ('is_total_fee_adjust', 'N'),
        ('total_fee', total_fee),
        ('gmt_payment', GMT_PAYMENT),
        ('seller_email', SELLER_EMAIL),
        ('price', total_fee),
        ('buyer_id', BUYER_ID),
        ('notify_id', notify_id),
        ('use_coupon', 'N'),
        ('gmt_close', ''),
        ('extra_common_param', EXTRA),
    ]


def return_fields(out_trade_no, trade_no, subject, body, total_fee,
                  trade_status, notify_id, extra=None):
    f = [
        ('is_success', 'T'),
        ('exterface', 'create_direct_pay_by_user'),
        ('notify_id', notify_id),
        ('notify_time', RETURN_NOTIFY_TIME),
        ('notify_type', 'trade_status_sync'),
        ('out_trade_no', out_trade_no),
        ('trade_no', trade_no),
        ('trade_status', trade_status),
        ('total_fee', total_fee),
        ('buyer_email', BUYER_EMAIL),
        ('buyer_id', BUYER_ID),
        ('seller_id', PARTNER),
        ('seller_email', SELLER_EMAIL),
        ('subject', subject),
        ('body', body),
        ('payment_type', '1'),
    ]
    if extra is not None:
        f.append(('extra_common_param', extra))
    return f


def request_fields(out_trade_no, subject, body, total_fee, seller, extra):
    return [
        ('service', 'create_direct_pay_by_user'),
        ('partner', PARTNER),
        ('payment_type', '1'),
        seller,
        ('out_trade_no', out_trade_no),
        ('subject', subject),
        ('body', body),
        ('total_fee', total_fee),
        ('notify_url', NOTIFY_URL),
        ('return_url', RETURN_URL),
        ('show_url', SHOW_URL),
    ] + extra


# Orders. U = utf-8, G = gbk (with 會員價: traditional characters whose GBK
# trail bytes are ASCII letters, and 堃, which GBK has and GB2312 lacks).
U1 = ('L20240520000101', '2024052021001004680000000101',
      '测试订单 VIP会员', '颜色=红&尺码=L+XL 限量版', '88.88')
G1 = ('L20240520000102', '2024052021001004680000000102',
      '會員價 测试订单（王堃）', '规格=大&数量=2+1 赠品', '0.01')
U2 = ('L20240520000103', '2024052021001004680000000103',
      '年费会员', '', '199.00')
U3 = ('L20240520000104', '2024052021001004680000000104',
      'RSA 测试 订单', '尺码=M&备注=a+b c', '12.30')
G3 = ('L20240520000105', '2024052021001004680000000105',
      'RSA 测试订单 會員價', '数量=3&单价=4.10+运费', '12.30')

DIRECT = [('paymethod', 'directPay'), ('defaultbank', '')]   # seed: bank 'alipay'


def bank(code):                                            # seed: any other bank
    return [('paymethod', 'bankPay'), ('defaultbank', code)]


def generate():
    settings.ALIPAY_KEY = read_md5_key()
    cases = []
    seller_id = ('seller_id', PARTNER)

    # Requests: the shop signs (MD5 key, or the merchant's RSA key).
    o = U1
    cases.append(request_case('md5_request_utf8', 'MD5', 'utf-8',
        request_fields(o[0], o[2], o[3], o[4], seller_id,
                       [('it_b_pay', '30m'), ('extra_common_param', EXTRA)]
                       + DIRECT)))
    o = G1
    cases.append(request_case('md5_request_gbk', 'MD5', 'gbk',
        request_fields(o[0], o[2], o[3], o[4], seller_id,
                       [('it_b_pay', '1h'), ('extra_common_param', EXTRA)]
                       + bank('CMB'))))
    o = U2
    cases.append(request_case('md5_request_utf8_seller_email', 'MD5', 'utf-8',
        request_fields(o[0], o[2], o[3], o[4], ('seller_email', SELLER_EMAIL),
                       [('extra_common_param', EXTRA), ('qr_pay_mode', '2'),
                        ('exter_invoke_ip', '203.0.113.7'),
                        ('anti_phishing_key', 'KP0k2cP3IhYzBWxk')] + DIRECT)))
    o = U3
    cases.append(request_case('rsa_request_utf8', 'RSA', 'utf-8',
        request_fields(o[0], o[2], o[3], o[4], seller_id,
                       [('extra_common_param', EXTRA)] + DIRECT)))
    o = G3
    cases.append(request_case('rsa_request_gbk', 'RSA', 'gbk',
        request_fields(o[0], o[2], o[3], o[4], seller_id,
                       [('it_b_pay', '30m'), ('qr_pay_mode', '2'),
                        ('qrcode_width', '200'), ('extra_common_param', EXTRA)]
                       + bank('ICBCB2C'))))

    # Notifies: "Alipay" signs (the shared MD5 key, or Alipay's RSA key).
    o = U1
    cases.append(notify_case('md5_notify_utf8_trade_success', 'MD5', 'utf-8',
        notify_fields(o[0], o[1], o[2], o[3], o[4], 'TRADE_SUCCESS',
                      'a6f1c2d3e4b5a69788796a5b4c3d2e1fhm')))
    o = G1
    cases.append(notify_case('md5_notify_gbk_trade_finished', 'MD5', 'gbk',
        notify_fields(o[0], o[1], o[2], o[3], o[4], 'TRADE_FINISHED',
                      'b7e2d3c4b5a69788796a5b4c3d2e1f0ahm')))
    o = U3
    cases.append(notify_case('rsa_notify_utf8_trade_success', 'RSA', 'utf-8',
        notify_fields(o[0], o[1], o[2], o[3], o[4], 'TRADE_SUCCESS',
                      'c8d3e4f5a6b7988796a5b4c3d2e1f0a1hm'),
        ALIPAY_PRIVATE))
    o = G3
    cases.append(notify_case('rsa1024_notify_gbk_trade_finished', 'RSA', 'gbk',
        notify_fields(o[0], o[1], o[2], o[3], o[4], 'TRADE_FINISHED',
                      'd9e4f5a6b7c8998796a5b4c3d2e1f0a2hm'),
        ALIPAY1024_PRIVATE))

    # Returns: the browser comes back to return_url with a signed query.
    o = U1
    cases.append(return_case('md5_return_utf8', 'MD5', 'utf-8',
        return_fields(o[0], o[1], o[2], o[3], o[4], 'TRADE_SUCCESS',
                      'RqPnCoPT3K9vwbh3InWeOSdQtTc8kPxnQyUJmF0IvgLK0fGcYPHXalSzcVyuUrKj3Sr',
                      EXTRA)))
    o = G1
    cases.append(return_case('md5_return_gbk', 'MD5', 'gbk',
        return_fields(o[0], o[1], o[2], o[3], o[4], 'TRADE_FINISHED',
                      'RqPnCoPT3K9vwbh3InWeOSdRtUd9lQyoRzVKnG1JwhML1gHdZQIYbmTadWzdVvLl4Ts',
                      EXTRA)))
    o = U3
    cases.append(return_case('rsa_return_utf8', 'RSA', 'utf-8',
        return_fields(o[0], o[1], o[2], o[3], o[4], 'TRADE_SUCCESS',
                      'RqPnCoPT3K9vwbh3InWeOSdSuVe0mRzpSaWLoH2KxiNM2hIeaRJZcnUbeXaeWwMm5Ut',
                      EXTRA), ALIPAY_PRIVATE))

    # The services after a payment, and the gateway's answers.
    h = sys.modules[__name__]
    cases += services.cases(h)
    answers = services.answers(h)

    key_sha256 = {}
    for rel in (MD5_KEY_FILE, APP_PRIVATE, APP_PUBLIC, ALIPAY_PRIVATE,
                ALIPAY_PUBLIC, ALIPAY1024_PRIVATE, ALIPAY1024_PUBLIC):
        with open(os.path.join(TESTDATA, rel), 'rb') as f:
            key_sha256[rel] = hashlib.sha256(f.read()).hexdigest()

    return {
        '_about': {
            'generator': 'testdata/legacy/make_vectors.py (seed 002 params_filter/'
                         'build_mysign ported to Python 3; RSA by openssl dgst -sha1 -sign)',
            'regenerate': 'python3 testdata/legacy/make_vectors.py',
            'keys': 'TEST ONLY: md5_key, keys/*.pem and legacy/alipay_rsa1024_*.pem '
                    'were generated for tests and belong to no merchant and not to Alipay',
            'key_sha256': key_sha256,
        },
        'md5_key': settings.ALIPAY_KEY,
        'md5_key_file': MD5_KEY_FILE,
        'partner': PARTNER,
        'seller_email': SELLER_EMAIL,
        'gateway': 'https://mapi.alipay.com/gateway.do',
        'notes': NOTES + services.NOTES,
        'cases': cases,
        'answers': answers,
    }


NOTES = [
    'TEST KEYS ONLY. md5_key is a made-up 32-character test key (also in '
    'legacy/md5_key.txt); the RSA keys are the repository test keys plus a '
    '1024-bit test pair in legacy/.',
    'string to sign: every field except sign and sign_type and those with an '
    'empty value, sorted by name, joined k=v with &, raw values (no escaping), '
    'as bytes in the charset (_input_charset). string_to_sign_hex is those '
    'bytes; string_to_sign is the same text decoded to UTF-8.',
    'MD5: sign = lower-case hex md5(string_to_sign bytes + md5_key), no & and '
    'no key= between them. RSA: sign = base64 (standard alphabet, padded) of '
    'SHA1withRSA PKCS#1 v1.5 over the same bytes.',
    'Keys: key is the signing key (md5, or a PEM path relative to testdata/), '
    'verify_key the one to check it with. Requests are signed by the merchant '
    '(keys/app_private_key_pkcs1.pem, checked with keys/app_public_key.pem); '
    'notifies and returns by Alipay (keys/alipay_private_key_pkcs1.pem or the '
    '1024-bit legacy/alipay_rsa1024_private.pem, checked with their public halves).',
    'params are the fields as sent, as UTF-8 text, without sign and sign_type. '
    'Requests: seed 002 sends only what params_filter kept, so an empty input '
    '(listed in dropped_empty, e.g. defaultbank with paymethod=directPay, or an '
    'empty body) is neither signed nor in gateway_url. Notifies: an empty '
    'field (gmt_close=, in every notify) IS in post_body but NOT in the '
    'string to sign.',
    'gateway_url is seed 002 style: the signed fields in sorted order, then '
    'sign and sign_type, through urlencode (quote_plus per byte of the charset '
    'encoding: A-Za-z0-9_.-~ kept, space as +). So a GBK trail byte in the '
    'ASCII range stays literal: 員 is %86T there.',
    'post_body and query are Java URLEncoder style, as Alipay sends them: '
    'A-Za-z0-9.-*_ kept, space as +, every byte of every other character '
    'percent-encoded in the charset (員 is %86%54), a literal + as %2B. post_body '
    'keeps Alipay\'s documented notify field order with sign_type and sign '
    'last; query is sorted with sign and sign_type last. Receivers must not '
    'depend on order, must decode exactly once, and must decode in the '
    'configured input_charset whatever the Content-Type says.',
    'content_type is the header shape of Alipay\'s own Java HTTP client '
    '(application/x-www-form-urlencoded; text/html; charset=...). The text/html '
    'parameter is not valid MIME (Go\'s mime.ParseMediaType returns '
    'ErrInvalidMediaParameter); it is an assumption for the mapi notify, not a capture.',
    'GBK cases contain 會員價 (traditional; GBK trail bytes 0x54 and 0x72 are '
    'ASCII letters) and 堃 (0x88D2: in GBK, not in GB2312): decode with GBK '
    '(or GB18030), never GB2312.',
    'extra_common_param is uid=42&ref=a+b c (& = + and a space); it is signed '
    'raw and echoed in the notify and return. Each notify and return echoes '
    'the request with the same out_trade_no (subject, body, total_fee).',
    'notify_verify_url is the unsigned check the receiver makes; a real '
    'Alipay (or the sandbox) answers the 4 bytes true for a notify_id it sent '
    'to that partner within about a minute.',
    'Both TRADE_SUCCESS and TRADE_FINISHED mean paid.',
    'notify_id values are made up and alphanumeric (real return notify_ids '
    'may contain / and +, which then arrive percent-encoded).',
]


def main():
    doc = generate()
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=2) + '\n'
    out = os.path.join(HERE, 'vectors.json')
    with open(out, 'wb') as f:
        f.write(text.encode('utf-8'))
    print('wrote testdata/legacy/vectors.json (%d cases)' % len(doc['cases']))


if __name__ == '__main__':
    main()

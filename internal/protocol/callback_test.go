package protocol

import (
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every notification of the vectors verifies as sent, and its parameters
// come out in UTF-8 with every value decoded exactly once.
func TestVerifyNotifyVectors(t *testing.T) {
	vec := testvec.Load(t)
	v := testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)
	for _, c := range vec.Notify.Cases {
		t.Run(c.Name, func(t *testing.T) {
			cb, err := parseCallback(c.PostBody)
			require.NoError(t, err)
			require.NoError(t, verifyOpenAPISign(cb, v))
			want := make(map[string]string)
			for k, val := range c.Params {
				if k != "sign" && k != "sign_type" {
					want[k] = val
				}
			}
			assert.Equal(t, want, cb.Params())
			assert.Equal(t, strings.ToLower(c.Charset), cb.Charset())
		})
	}
}

func TestVerifyDecodesOnce(t *testing.T) {
	vec := testvec.Load(t)
	v := testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)
	byName := map[string]testvec.Notify{}
	for _, c := range vec.Notify.Cases {
		byName[c.Name] = c
	}
	cb, err := parseCallback(byName["notify_with_passback_params"].PostBody)
	require.NoError(t, err)
	require.NoError(t, verifyOpenAPISign(cb, v))
	// The merchant URL-encoded it; Alipay returns it still encoded.
	assert.Equal(t, "order%3D42%26from%3Dwap", cb.Params()["passback_params"])

	cb, err = parseCallback(byName["notify_basic_utf8"].PostBody)
	require.NoError(t, err)
	p := cb.Params()
	assert.Equal(t, "VIP+会员 月卡", p["subject"], "%2B is a plus, + is a space")
	assert.Equal(t, `[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]`, p["fund_bill_list"])

	cb, err = parseCallback(byName["notify_gbk"].PostBody)
	require.NoError(t, err)
	require.NoError(t, verifyOpenAPISign(cb, v))
	assert.Equal(t, "测试订单 GBK", cb.Params()["subject"])
	assert.Equal(t, "中文描述", cb.Params()["body"])
}

func TestVerifyReturnVector(t *testing.T) {
	vec := testvec.Load(t)
	u, err := url.Parse(vec.Return.RedirectURL)
	require.NoError(t, err)
	cb, err := parseCallback(u.RawQuery)
	require.NoError(t, err)
	require.NoError(t, verifyOpenAPISign(cb, testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)))
	assert.Equal(t, "alipay.trade.page.pay.return", cb.Get("method"))
	assert.NotContains(t, cb.Params(), "sign")
	assert.NotContains(t, cb.Params(), "sign_type")
}

func TestVerifyRefuses(t *testing.T) {
	vec := testvec.Load(t)
	body := vec.Notify.Cases[0].PostBody
	require.Contains(t, body, "total_amount=88.88")
	v := testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)

	cases := map[string]struct {
		body     string
		verifier *RSAVerifier
		err      error
	}{
		"tampered amount":   {strings.Replace(body, "total_amount=88.88", "total_amount=0.01", 1), v, ErrBadSignature},
		"added parameter":   {body + "&extra=1", v, ErrBadSignature},
		"foreign key":       {body, testVerifier(t, "app_public_key.pem", SignTypeRSA2), ErrBadSignature},
		"weaker hash asked": {strings.Replace(body, "sign_type=RSA2", "sign_type=RSA", 1), v, ErrSignType},
		"verifier is RSA":   {body, testVerifier(t, "alipay_public_key.pem", SignTypeRSA), ErrSignType},
		"missing sign":      {removeParam(body, "sign"), v, ErrMissingSign},
		"empty sign":        {replaceParam(body, "sign", ""), v, ErrMissingSign},
		"sign not base64":   {replaceParam(body, "sign", "%%%"), v, ErrMalformed},
		"sign garbage":      {replaceParam(body, "sign", "AAAA"), v, ErrBadSignature},
		"duplicated param":  {body + "&total_amount=88.88", v, ErrMalformed},
		"duplicated sign":   {body + "&sign=AAAA", v, ErrMalformed},
		"bad escape":        {body + "&x=%zz", v, ErrMalformed},
		"truncated escape":  {body + "&x=%4", v, ErrMalformed},
		"control in name":   {body + "&x%0Ay=1", v, ErrMalformed},
		"unknown charset":   {strings.Replace(body, "charset=utf-8", "charset=latin1", 1), v, ErrMalformed},
		"empty":             {"", v, ErrMalformed},
		"only ampersands":   {"&&&", v, ErrMalformed},
		"too large":         {body + "&pad=" + strings.Repeat("a", MaxCallbackSize), v, ErrMalformed},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cb, err := parseCallback(c.body)
			if err == nil {
				err = verifyOpenAPISign(cb, c.verifier)
			}
			assert.ErrorIs(t, err, c.err)
		})
	}
}

// The strings to sign of an OpenAPI callback: V1, V1 without empty values
// (what current Java and Go SDKs compute) and V2 verify; V2 without empty
// values, which Alipay does not use, does not.
func TestVerifyForms(t *testing.T) {
	s := testSigner(t, "alipay_private_key_pkcs1.pem", SignTypeRSA2)
	v := testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)
	params := map[string]string{"app_id": testvec.AppID, "out_trade_no": "1", "body": "", "trade_status": "TRADE_SUCCESS", "sign_type": "RSA2"}
	withoutType := maps.Clone(params)
	delete(withoutType, "sign_type")
	// RequestContent drops empties and keeps sign_type: the "V2 without
	// empties" form, which Alipay does not use and must not verify...
	sigV2NoEmpty, err := s.Sign(RequestContent(params))
	require.NoError(t, err)
	// ...while V1 without empties does.
	sigV1NoEmpty, err := s.Sign(RequestContent(withoutType))
	require.NoError(t, err)
	// V1 with the empty value kept.
	sigV1, err := s.Sign([]byte("app_id=" + testvec.AppID + "&body=&out_trade_no=1&trade_status=TRADE_SUCCESS"))
	require.NoError(t, err)
	// V2 with the empty value kept.
	sigV2, err := s.Sign([]byte("app_id=" + testvec.AppID + "&body=&out_trade_no=1&sign_type=RSA2&trade_status=TRADE_SUCCESS"))
	require.NoError(t, err)

	form := "app_id=" + testvec.AppID + "&body=&out_trade_no=1&trade_status=TRADE_SUCCESS&sign_type=RSA2&sign="
	for name, c := range map[string]struct {
		sig string
		ok  bool
	}{"V1": {sigV1, true}, "V1 without empties": {sigV1NoEmpty, true}, "V2": {sigV2, true}, "V2 without empties": {sigV2NoEmpty, false}} {
		t.Run(name, func(t *testing.T) {
			cb, err := parseCallback(form + url.QueryEscape(c.sig))
			require.NoError(t, err)
			if c.ok {
				assert.NoError(t, verifyOpenAPISign(cb, v))
			} else {
				assert.ErrorIs(t, verifyOpenAPISign(cb, v), ErrBadSignature)
			}
		})
	}
}

func removeParam(body, key string) string {
	var out []string
	for _, f := range strings.Split(body, "&") {
		if !strings.HasPrefix(f, key+"=") {
			out = append(out, f)
		}
	}
	return strings.Join(out, "&")
}

func replaceParam(body, key, value string) string {
	return removeParam(body, key) + "&" + key + "=" + value
}

func TestFormUnescape(t *testing.T) {
	for in, want := range map[string]string{"a+b": "a b", "a%2Bb": "a+b", "%E4%B8%AD": "中", "%b2%e2": "\xb2\xe2", "": ""} {
		got, err := formUnescape(in)
		require.NoError(t, err)
		assert.Equal(t, want, string(got), in)
	}
	for _, in := range []string{"%", "%2", "%G0", "a%2"} {
		_, err := formUnescape(in)
		assert.Error(t, err, in)
	}
}

// Old apps (sign_type RSA): callbacks are SHA-1 signatures, and an RSA2
// one is then refused like any other that names another algorithm.
func TestVerifySignTypeRSA(t *testing.T) {
	s := testSigner(t, "alipay_private_key_pkcs1.pem", SignTypeRSA)
	v := testVerifier(t, "alipay_public_key.pem", SignTypeRSA)
	params := map[string]string{"app_id": testvec.AppID, "out_trade_no": "A1", "subject": "旧应用 old+app", "total_amount": "1.00", "trade_status": "TRADE_SUCCESS"}
	sign, err := s.Sign(RequestContent(params))
	require.NoError(t, err)
	form := url.Values{}
	for k, val := range params {
		form.Set(k, val)
	}
	form.Set("sign_type", "RSA")
	form.Set("sign", sign)
	cb, err := parseCallback(form.Encode())
	require.NoError(t, err)
	require.NoError(t, verifyOpenAPISign(cb, v))
	assert.Equal(t, "旧应用 old+app", cb.Params()["subject"])

	assert.ErrorIs(t, verifyOpenAPISign(cb, testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)), ErrSignType)
	form.Del("sign_type")
	cb, err = parseCallback(form.Encode())
	require.NoError(t, err)
	assert.ErrorIs(t, verifyOpenAPISign(cb, testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)), ErrBadSignature,
		"a SHA-1 signature does not pass as RSA2")
}

// Empty values that a callback carries reach Params only when the string
// that verified kept them: the form without them verifies with any empty
// parameter appended.
func TestParamsOnlySigned(t *testing.T) {
	v := testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)
	for _, c := range testvec.Load(t).Notify.Cases {
		if c.SignedWithType {
			continue
		}
		cb, err := parseCallback(c.PostBody + "&anything=")
		require.NoError(t, err)
		require.NoError(t, verifyOpenAPISign(cb, v), c.Name)
		assert.NotContains(t, cb.Params(), "anything", c.Name)
		assert.NotContains(t, string(appendParams(nil, cb)), "anything", c.Name)
	}
}

// Empty values that Alipay did sign are kept.
func TestSignedEmptyParamsKept(t *testing.T) {
	s := testSigner(t, "alipay_private_key_pkcs1.pem", SignTypeRSA2)
	p := map[string]string{"app_id": testvec.AppID, "notify_id": "n1", "out_trade_no": "E1", "body": "", "total_amount": "1.00"}
	sign, err := s.Sign(requestContent(p, true)) // as the Node SDK and PHP sign: empties kept
	require.NoError(t, err)
	raw := "app_id=" + testvec.AppID + "&notify_id=n1&out_trade_no=E1&body=&total_amount=1.00&sign_type=RSA2&sign=" + url.QueryEscape(sign)
	cb, err := parseCallback(raw)
	require.NoError(t, err)
	require.NoError(t, verifyOpenAPISign(cb, testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)))
	assert.Equal(t, map[string]string{"app_id": testvec.AppID, "notify_id": "n1", "out_trade_no": "E1", "body": "", "total_amount": "1.00"}, cb.Params())
}

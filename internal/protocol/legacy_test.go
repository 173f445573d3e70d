package protocol

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// legacyKey is the signer or verifier that a vector names: md5, or a key
// file under testdata/.
func legacyKey(t testing.TB, v *testvec.LegacyVectors, name string, private bool) interface {
	Signer
	Verifier
} {
	t.Helper()
	if name == "md5" {
		k, err := NewMD5Key(v.MD5Key)
		require.NoError(t, err)
		return k
	}
	data := testvec.Read(t, strings.Split(name, "/")...)
	if private {
		key, err := ParsePrivateKey(data)
		require.NoError(t, err)
		s, err := NewRSASigner(key, SignTypeRSA)
		require.NoError(t, err)
		return signerOnly{s}
	}
	key, err := ParsePublicKey(data)
	require.NoError(t, err)
	ver, err := NewRSAVerifier(key, SignTypeRSA)
	require.NoError(t, err)
	return verifierOnly{ver}
}

type signerOnly struct{ *RSASigner }

func (signerOnly) Verify([]byte, string) error { return errors.New("a signer") }

type verifierOnly struct{ *RSAVerifier }

func (verifierOnly) Sign([]byte) (string, error) { return "", errors.New("a verifier") }

// legacyFor is the protocol of the vectors' partner for case c.
func legacyFor(t testing.TB, v *testvec.LegacyVectors, c testvec.Legacy) *Legacy {
	t.Helper()
	p := &Legacy{Partner: v.Partner, SellerID: v.Partner, Charset: c.Charset, Gateway: v.Gateway,
		Signer: legacyKey(t, v, c.Key, true), Verifier: legacyKey(t, v, c.VerifyKey, false)}
	if c.Key == "md5" {
		p.Verifier = p.Signer.(Verifier)
	}
	return p
}

// Requests: the string to sign in the charset, the sign (MD5 and RSA are
// deterministic) and the query, as seed 002's code and openssl made them.
func TestLegacyRequestVectors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind != "request" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			p := legacyFor(t, v, c)
			q, err := EncodeLegacy(c.Params, c.Charset, p.Signer)
			require.NoError(t, err)
			got, err := url.ParseQuery(q)
			require.NoError(t, err)
			u, err := url.Parse(c.GatewayURL)
			require.NoError(t, err)
			assert.Equal(t, u.Query(), got, "the same parameters, bytes in the charset")
			assert.Equal(t, c.Sign, got.Get("sign"))
			assert.Equal(t, c.SignType, got.Get("sign_type"))
			flat := map[string]string{}
			for k := range got {
				flat[k] = got.Get(k)
			}
			assert.Equal(t, c.HexToSign, hex.EncodeToString(LegacyContent(flat)))
		})
	}
}

// The pay URL that the protocol makes from an order is the vectors'.
func TestLegacyPayURL(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind != "request" || c.Params["anti_phishing_key"] != "" {
			continue // claims cannot set the anti-phishing fields
		}
		t.Run(c.Name, func(t *testing.T) {
			p := legacyFor(t, v, c)
			if c.Params["seller_email"] != "" {
				p.SellerID, p.SellerEmail = "", c.Params["seller_email"]
			}
			claims := map[string]json.RawMessage{"exp": json.RawMessage("9999999999")}
			for k, val := range c.Params {
				switch k {
				case "service", "partner", "_input_charset", "payment_type", "seller_id", "seller_email", "notify_url", "return_url":
					continue
				case "total_fee":
					k = "total_amount"
				}
				b, _ := json.Marshal(val)
				claims[k] = b
			}
			o, err := p.ParseOrder(claims)
			require.NoError(t, err)
			got, err := p.PayURL(o, c.Params["notify_url"], c.Params["return_url"], time.Now())
			require.NoError(t, err)
			gu, err := url.Parse(got)
			require.NoError(t, err)
			wu, err := url.Parse(c.GatewayURL)
			require.NoError(t, err)
			assert.Equal(t, wu.Host+wu.Path, gu.Host+gu.Path)
			assert.Equal(t, wu.Query(), gu.Query())
		})
	}
}

// Notifications and returns verify as sent, and their parameters come out
// in UTF-8, the empty ones (never signed) left out.
func TestLegacyCallbackVectors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind == "request" {
			continue
		}
		raw, event := c.PostBody, EventNotify
		if c.Kind == "return" {
			raw, event = c.Query, EventReturn
		}
		t.Run(c.Name, func(t *testing.T) {
			p := legacyFor(t, v, c)
			cb, err := p.ParseCallback(raw)
			require.NoError(t, err)
			require.NoError(t, p.VerifyCallback(context.Background(), cb, event))
			want := map[string]string{}
			for k, val := range c.Params {
				if val != "" {
					want[k] = val
				}
			}
			assert.Equal(t, want, cb.Params())
			assert.Equal(t, c.Params["total_fee"], cb.Amount())

			// Another seller, another sign_type, none, a changed amount.
			for name, edit := range map[string]func(*Legacy) string{
				"other seller": func(p *Legacy) string { p.SellerID = "2088000000000009"; return raw },
				"seller_email": func(p *Legacy) string { p.SellerEmail = "other@example.com"; return raw },
				"sign_type":    func(p *Legacy) string { return strings.Replace(raw, "sign_type="+c.SignType, "sign_type=RSA2", 1) },
				"no sign_type": func(p *Legacy) string { return strings.Replace(raw, "sign_type="+c.SignType, "x=1", 1) },
				"amount changed": func(p *Legacy) string {
					changed := strings.Replace(raw, "total_fee="+c.Params["total_fee"], "total_fee=999.99", 1)
					require.NotEqual(t, raw, changed)
					return changed
				},
			} {
				p := legacyFor(t, v, c)
				cb, err := p.ParseCallback(edit(p))
				if err == nil {
					err = p.VerifyCallback(context.Background(), cb, event)
				}
				assert.Error(t, err, name)
			}
		})
	}
}

// An MD5 sign in upper case verifies; any other is refused in constant
// time. A key must be 32 letters and digits.
func TestMD5Key(t *testing.T) {
	k, err := NewMD5Key("testonlymd5keynotforproduction42")
	require.NoError(t, err)
	sign, err := k.Sign([]byte("a=1&b=2"))
	require.NoError(t, err)
	assert.Len(t, sign, 32)
	assert.NoError(t, k.Verify([]byte("a=1&b=2"), strings.ToUpper(sign)))
	assert.ErrorIs(t, k.Verify([]byte("a=1&b=3"), sign), ErrBadSignature)
	assert.ErrorIs(t, k.Verify([]byte("a=1&b=2"), sign[:31]), ErrBadSignature)
	for _, bad := range []string{"", "short", strings.Repeat("a", 31), strings.Repeat("a", 33), strings.Repeat("-", 32), strings.Repeat("中", 32)} {
		_, err := NewMD5Key(bad)
		assert.Error(t, err, bad)
	}
}

// A sign read from a query whose + became a space still verifies (RSA).
func TestLegacyReturnSignWithSpaces(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind != "return" || c.SignType != SignTypeRSA {
			continue
		}
		u, err := url.ParseQuery(c.Query)
		require.NoError(t, err)
		require.Contains(t, u.Get("sign"), "+", "the vector's sign has a + to lose")
		raw := strings.Replace(c.Query, url.QueryEscape(u.Get("sign")), strings.ReplaceAll(url.QueryEscape(u.Get("sign")), "%2B", "+"), 1)
		p := legacyFor(t, v, c)
		cb, err := p.ParseCallback(raw)
		require.NoError(t, err)
		assert.NoError(t, p.VerifyCallback(context.Background(), cb, EventReturn))
	}
}

// notify_verify: only the answer true confirms; another answer refuses;
// no answer is no confirmation (Alipay will send it again).
func TestLegacyNotifyVerify(t *testing.T) {
	v := testvec.LoadLegacy(t)
	var c testvec.Legacy
	for _, vc := range v.Cases {
		if vc.Name == "md5_notify_utf8_trade_success" {
			c = vc
		}
	}
	require.NotEmpty(t, c.Name)
	var (
		mu     sync.Mutex
		answer = "true"
		asked  url.Values
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = r.URL.Query()
		answer := answer
		mu.Unlock()
		switch answer {
		case "hang":
			<-r.Context().Done()
		case "500":
			w.WriteHeader(500)
		default:
			_, _ = w.Write([]byte(answer))
		}
	}))
	defer gw.Close()
	for _, tc := range []struct {
		answer string
		want   error
	}{
		{"true", nil}, {"true\r\n", nil}, {"false", ErrNotConfirmed}, {"invalid", ErrNotConfirmed}, {"TRUE", ErrNotConfirmed},
		{"true false", ErrNotConfirmed}, {"<html>true</html>", ErrNotConfirmed}, {"", ErrNotConfirmed},
		{"500", ErrNoConfirmation}, {"hang", ErrNoConfirmation},
	} {
		mu.Lock()
		answer = tc.answer
		mu.Unlock()
		p := legacyFor(t, v, c)
		p.Gateway, p.NotifyVerify, p.HTTP, p.ConfirmTimeout = gw.URL+"/gateway.do", true, gw.Client(), 200*time.Millisecond
		cb, err := p.ParseCallback(c.PostBody)
		require.NoError(t, err)
		err = p.VerifyCallback(context.Background(), cb, EventNotify)
		if tc.want == nil {
			assert.NoError(t, err, tc.answer)
		} else {
			assert.ErrorIs(t, err, tc.want, tc.answer)
		}
		mu.Lock()
		assert.Equal(t, url.Values{"service": {"notify_verify"}, "partner": {v.Partner}, "notify_id": {c.Params["notify_id"]}}, asked)
		mu.Unlock()
	}
	// A gateway that nobody answers on.
	p := legacyFor(t, v, c)
	p.Gateway, p.NotifyVerify, p.HTTP = "http://127.0.0.1:1/gateway.do", true, http.DefaultClient
	cb, err := p.ParseCallback(c.PostBody)
	require.NoError(t, err)
	assert.ErrorIs(t, p.VerifyCallback(context.Background(), cb, EventNotify), ErrNoConfirmation)
}

// Pay claims: the legacy ones pass, the OpenAPI ones and wap are refused,
// and text that GBK cannot hold is refused for a GBK partner.
func TestLegacyParseOrder(t *testing.T) {
	p := &Legacy{Partner: "2088000000000001", SellerID: "2088000000000001", Charset: "gbk"}
	base := `"out_trade_no":"L1","total_amount":"1.5","subject":"测试","exp":1`
	o, err := p.ParseOrder(claimsOf(t, `{`+base+`,"body":"b","it_b_pay":"30m","extra_common_param":"x=1","paymethod":"bankPay","defaultbank":"CMB","show_url":"https://shop.example.com/p/1"}`))
	require.NoError(t, err)
	params, err := p.params(o, "n", "r", "")
	require.NoError(t, err)
	assert.Equal(t, "1.50", params["total_fee"])
	assert.Equal(t, "CMB", params["defaultbank"])
	for claim, extra := range map[string]string{
		"product": `"product":"wap"`, "timeout_express": `"timeout_express":"30m"`, "passback_params": `"passback_params":"x"`,
		"biz": `"biz":{}`, "subject": `"subject":"😀"`, "it_b_pay": `"it_b_pay":"30s"`, "paymethod": `"paymethod":"x"`,
		"defaultbank": `"defaultbank":"a b"`, "show_url": `"show_url":"javascript:x"`,
	} {
		js := `{` + base + `,` + extra + `}`
		if claim == "subject" {
			js = `{"out_trade_no":"L1","total_amount":"1.5","exp":1,` + extra + `}`
		}
		_, err := p.ParseOrder(claimsOf(t, js))
		var ce *ClaimError
		require.ErrorAs(t, err, &ce, claim)
		assert.Equal(t, claim, ce.Claim)
	}
	// And OpenAPI refuses the legacy claims.
	_, err = parseOpenAPIOrder(claimsOf(t, `{`+base+`,"it_b_pay":"30m"}`))
	assert.ErrorContains(t, err, "timeout_express")
}

// Every mix of settings that makes no sense stops with an error that names
// the setting.
func TestNewLegacyErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	keyFile := filepath.Join(t.TempDir(), "md5.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(v.MD5Key+"\n"), 0o600))
	good := LegacyConfig{Partner: v.Partner, MD5Key: v.MD5Key}
	p, _, err := NewLegacy(good)
	require.NoError(t, err)
	assert.Equal(t, v.Partner, p.SellerID, "seller_id defaults to the partner")
	assert.Equal(t, GatewayMapi, p.Gateway)
	assert.Equal(t, "utf-8", p.Charset)
	_, _, err = NewLegacy(LegacyConfig{Partner: v.Partner, MD5Key: keyFile, InputCharset: "GBK"})
	require.NoError(t, err, "the key from a file")

	rsa := LegacyConfig{Partner: v.Partner, SignType: SignTypeRSA, AppPrivateKey: testvec.Key("app_private_key_pkcs1.pem"),
		AlipayPublicKey: testvec.Path("legacy", "alipay_rsa1024_public.pem")}
	_, warnings, err := NewLegacy(rsa)
	require.NoError(t, err)
	assert.Equal(t, []Warning{{"alipay_public_key", "legacy 1024-bit RSA key: move the app to RSA2 with a 2048-bit key"}}, warnings)

	for name, c := range map[string]struct {
		cfg     func(LegacyConfig) LegacyConfig
		setting string
	}{
		"partner":             {func(c LegacyConfig) LegacyConfig { c.Partner = "2021000000000001"; return c }, "partner"},
		"no md5_key":          {func(c LegacyConfig) LegacyConfig { c.MD5Key = ""; return c }, "md5_key"},
		"short md5_key":       {func(c LegacyConfig) LegacyConfig { c.MD5Key = v.MD5Key[:31]; return c }, "md5_key"},
		"md5_key not alnum":   {func(c LegacyConfig) LegacyConfig { c.MD5Key = v.MD5Key[:31] + "-"; return c }, "md5_key"},
		"md5_key file absent": {func(c LegacyConfig) LegacyConfig { c.MD5Key = "/nonexistent/md5.key"; return c }, "md5_key"},
		"md5 with rsa keys":   {func(c LegacyConfig) LegacyConfig { c.AppPrivateKey = rsa.AppPrivateKey; return c }, "app_private_key"},
		"rsa with md5_key":    {func(c LegacyConfig) LegacyConfig { c = rsa; c.MD5Key = v.MD5Key; return c }, "md5_key"},
		"rsa without key":     {func(c LegacyConfig) LegacyConfig { c = rsa; c.AppPrivateKey = ""; return c }, "app_private_key"},
		"rsa own key": {func(c LegacyConfig) LegacyConfig {
			c = rsa
			c.AlipayPublicKey = testvec.Key("app_public_key.pem")
			return c
		}, "alipay_public_key"},
		"sign_type RSA2":   {func(c LegacyConfig) LegacyConfig { c.SignType = "RSA2"; return c }, "sign_type"},
		"charset":          {func(c LegacyConfig) LegacyConfig { c.InputCharset = "big5"; return c }, "input_charset"},
		"both sellers":     {func(c LegacyConfig) LegacyConfig { c.SellerID, c.SellerEmail = v.Partner, "s@example.com"; return c }, "seller_email"},
		"bad seller_id":    {func(c LegacyConfig) LegacyConfig { c.SellerID = "123"; return c }, "seller_id"},
		"bad seller_email": {func(c LegacyConfig) LegacyConfig { c.SellerEmail = "nobody"; return c }, "seller_email"},
		"sandbox gateway":  {func(c LegacyConfig) LegacyConfig { c.Gateway = "sandbox"; return c }, "gateway"},
		"http gateway":     {func(c LegacyConfig) LegacyConfig { c.Gateway = "http://mapi.alipay.com/gateway.do"; return c }, "gateway"},
	} {
		_, _, err := NewLegacy(c.cfg(good))
		require.Error(t, err, name)
		assert.True(t, strings.HasPrefix(err.Error(), c.setting+": "), "%s: %v", name, err)
		assert.NotContains(t, err.Error(), v.MD5Key[:20], "%s: the key is never echoed", name)
	}

	// A value with . or / that is not a file (a key mistyped, pasted with
	// a stray character) is not echoed either, whole or in part.
	for _, value := range []string{v.MD5Key[:16] + "." + v.MD5Key[16:], v.MD5Key + "/", "./" + v.MD5Key[:30], "/nonexistent/" + v.MD5Key} {
		_, _, err := NewLegacy(LegacyConfig{Partner: v.Partner, MD5Key: value})
		require.Error(t, err, value)
		assert.True(t, strings.HasPrefix(err.Error(), "md5_key: "), err.Error())
		assert.NotContains(t, err.Error(), v.MD5Key[:12], "the value is never echoed")
		assert.NotContains(t, err.Error(), "nonexistent", "the value is never echoed")
	}
}

// DecodeCharset gives the vectors' strings to sign back from their bytes,
// and refuses bytes that are not text in the charset.
func TestDecodeCharset(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		b, err := hex.DecodeString(c.HexToSign)
		require.NoError(t, err)
		got, err := DecodeCharset(b, c.Charset)
		require.NoError(t, err, c.Name)
		assert.Equal(t, c.StringToSign, got, c.Name)
		back, err := encodeCharset(got, c.Charset)
		require.NoError(t, err)
		assert.Equal(t, b, back, c.Name)
	}
	for _, bad := range []struct {
		b       string
		charset string
	}{
		{"\xff\xfe", "utf-8"}, {"a\xe4\xb8", "utf-8"},
		{"\xff", "gbk"}, {"\x81", "gbk"}, {"\x81\x20", "gbk"}, {"\x81\x7f", "gbk"}, {"a\xd6", "gbk"},
		{"abc", "latin1"}, {"\xe4\xb8\xad", "gb2312"},
	} {
		_, err := DecodeCharset([]byte(bad.b), bad.charset)
		assert.Error(t, err, "%q in %s", bad.b, bad.charset)
	}
	s, err := DecodeCharset([]byte("\xd6\xd0\xce\xc4 abc"), "gbk")
	require.NoError(t, err)
	assert.Equal(t, "中文 abc", s)
	s, err = DecodeCharset([]byte("plain"), "utf-8")
	require.NoError(t, err)
	assert.Equal(t, "plain", s)
}

package sandbox

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// The legacy services after the payment that answer in XML:
// single_trade_query and close_trade, signed either way, in either
// charset, by GET and by POST; and the helpers that the refund tests
// share.

// signer signs the partner's requests with signType: the MD5 key, or the
// app's RSA key (SHA1withRSA).
func (w *legacyWorld) signer(t *testing.T, signType string) protocol.Signer {
	t.Helper()
	if signType == protocol.SignTypeMD5 {
		k, err := protocol.NewMD5Key(w.vec.MD5Key)
		require.NoError(t, err)
		return k
	}
	return protocoltest.Signer(t, "app_private_key_pkcs1.pem", protocol.SignTypeRSA)
}

// call signs a legacy request, params in UTF-8 with _input_charset and
// (unless they name one) the partner added, in charset, and sends it: by
// GET, or as a POST form with _input_charset also in the action URL.
func (w *legacyWorld) call(t *testing.T, signType, charset string, post bool, params map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	return w.request(t, w.signedURL(t, signType, charset, params), post)
}

// signedURL is the gateway URL of a legacy request that call sends.
func (w *legacyWorld) signedURL(t *testing.T, signType, charset string, params map[string]string) string {
	t.Helper()
	p := maps.Clone(params)
	p["_input_charset"] = charset
	if p["partner"] == "" {
		p["partner"] = w.vec.Partner
	}
	q, err := protocol.EncodeLegacy(p, charset, w.signer(t, signType))
	require.NoError(t, err)
	return "http://sandbox.test/gateway.do?" + q
}

// paidLegacyTrade opens and pays a legacy order as m, and returns its
// trade_no once the shop has the payment's notification.
func (w *legacyWorld) paidLegacyTrade(t *testing.T, m *protocol.Legacy, no, amount, subject string) string {
	t.Helper()
	_, forms := w.cashier(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": no, "total_amount": amount, "subject": subject}), false))
	paid := w.press(t, forms["pay"])
	require.Equal(t, http.StatusFound, paid.Code, paid.Body.String())
	back, err := url.Parse(paid.Header().Get("Location"))
	require.NoError(t, err)
	w.shop.waitNotify(t)
	return back.Query().Get("trade_no")
}

// legacyAnswer is an XML answer of the legacy gateway, read back.
type legacyAnswer struct {
	IsSuccess string `xml:"is_success"`
	Error     string `xml:"error"`
	Params    []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:",chardata"`
	} `xml:"request>param"`
	Trade struct {
		Fields []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"response>trade"`
	Sign     string `xml:"sign"`
	SignType string `xml:"sign_type"`

	body           []byte
	params, fields map[string]string
	order          []string // the trade's fields, in the order written
}

// readXML reads an XML answer in charset, as Go's decoder does with a
// reader for the declared encoding.
func readXML(t *testing.T, rec *httptest.ResponseRecorder, charset string) legacyAnswer {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "text/xml; charset="+charset, rec.Header().Get("Content-Type"))
	body := rec.Body.Bytes()
	require.True(t, bytes.HasPrefix(body, []byte(`<?xml version="1.0" encoding="`+charset+`"?><alipay>`)), "%s", body)
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.CharsetReader = func(cs string, r io.Reader) (io.Reader, error) {
		if cs == "gbk" {
			return transform.NewReader(r, simplifiedchinese.GBK.NewDecoder()), nil
		}
		return nil, errors.New("unexpected charset " + cs)
	}
	var a legacyAnswer
	require.NoError(t, dec.Decode(&a), "%s", body)
	a.body, a.params, a.fields = body, map[string]string{}, map[string]string{}
	for _, p := range a.Params {
		a.params[p.Name] = p.Value
	}
	for _, f := range a.Trade.Fields {
		a.fields[f.XMLName.Local] = f.Value
		a.order = append(a.order, f.XMLName.Local)
	}
	return a
}

// refusedXML checks an XML answer that refuses with code: exactly
// Alipay's shape.
func refusedXML(t *testing.T, rec *httptest.ResponseRecorder, charset, code string) {
	t.Helper()
	a := readXML(t, rec, charset)
	assert.Equal(t, `<?xml version="1.0" encoding="`+charset+`"?><alipay><is_success>F</is_success><error>`+code+`</error></alipay>`, string(a.body))
}

// takenXML checks an XML answer of a request taken, with nothing to tell.
func takenXML(t *testing.T, rec *httptest.ResponseRecorder, charset string) {
	t.Helper()
	a := readXML(t, rec, charset)
	assert.Equal(t, `<?xml version="1.0" encoding="`+charset+`"?><alipay><is_success>T</is_success></alipay>`, string(a.body))
}

// legacyCases are the ways a legacy partner speaks: each sign type, each
// charset, by GET and by POST.
var legacyCases = []struct {
	name, signType, charset string
	post                    bool
	keys                    legacyKeys
}{
	{"md5 utf-8 get", protocol.SignTypeMD5, "utf-8", false, legacyKeys{}},
	{"md5 gbk post", protocol.SignTypeMD5, "gbk", true, legacyKeys{}},
	{"rsa utf-8 post", protocol.SignTypeRSA, "utf-8", true, testLegacyRSAKeys},
	{"rsa gbk get", protocol.SignTypeRSA, "gbk", false, testLegacyRSAKeys},
	{"md5 gbk get", protocol.SignTypeMD5, "gbk", false, legacyKeys{}},
	{"rsa utf-8 get", protocol.SignTypeRSA, "utf-8", false, testLegacyRSAKeys},
}

// single_trade_query and close_trade, in each way: the query's shape,
// its request and trade, the sign; close of a paid and of an unpaid
// trade, and what follows.
func TestLegacyQueryAndClose(t *testing.T) {
	for _, c := range legacyCases {
		t.Run(c.name, func(t *testing.T) {
			w := newLegacyWorld(t, nil)
			m := w.merchant(t, c.signType, c.charset, c.keys, nil)
			subject := "會員價 测试（王堃） <茶>"
			tradeNo := w.paidLegacyTrade(t, m, "Q1", "88.80", subject)
			call := func(p map[string]string) *httptest.ResponseRecorder {
				return w.call(t, c.signType, c.charset, c.post, p)
			}

			for _, by := range []map[string]string{{"out_trade_no": "Q1"}, {"trade_no": tradeNo}} {
				p := maps.Clone(by)
				p["service"] = "single_trade_query"
				a := readXML(t, call(p), c.charset)
				assert.Equal(t, "T", a.IsSuccess)
				want := map[string]string{"service": "single_trade_query", "partner": w.vec.Partner, "_input_charset": c.charset}
				maps.Copy(want, by)
				assert.Equal(t, want, a.params, "the request's parameters, but sign and sign_type")
				assertStrings(t, map[string]string{"out_trade_no": "Q1", "trade_no": tradeNo, "trade_status": "TRADE_FINISHED",
					"total_fee": "88.80", "buyer_id": sandboxBuyerID, "seller_id": w.vec.Partner, "subject": subject,
					"price": "88.80", "quantity": "1", "payment_type": "1", "buyer_email": sandboxBuyerEmail}, a.fields)
				assert.Equal(t, []string{"out_trade_no", "trade_no", "trade_status", "total_fee", "buyer_id", "seller_id", "gmt_create"}, a.order[:7])
				assert.NotEmpty(t, a.fields["gmt_payment"])
				assert.NotContains(t, a.fields, "refund_fee")
				// The sign is over the fields, sorted, in the charset.
				content := map[string]string{}
				for k, v := range a.fields {
					content[k] = string(encodeText(v, c.charset))
				}
				assert.Equal(t, c.signType, a.SignType)
				assert.NoError(t, m.Verifier.Verify(protocol.LegacyContent(content), a.Sign))
				if c.charset == "gbk" {
					assert.True(t, bytes.Contains(a.body, encodeText("會員價 测试（王堃） &lt;茶&gt;", "gbk")), "GBK bytes, XML-escaped")
				}
			}
			refusedXML(t, call(map[string]string{"service": "single_trade_query", "out_trade_no": "NOPE"}), c.charset, "TRADE_NOT_EXIST")

			// close_trade: a paid trade is not closed; an unpaid one is,
			// and then neither paid nor reopened.
			refusedXML(t, call(map[string]string{"service": "close_trade", "trade_no": tradeNo}), c.charset, "TRADE_STATUS_NOT_AVAILD")
			refusedXML(t, call(map[string]string{"service": "close_trade", "out_order_no": "NOPE"}), c.charset, "TRADE_NOT_EXIST")
			_, forms := w.cashier(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "Q2", "total_amount": "1.00", "subject": "关"}), false))
			takenXML(t, call(map[string]string{"service": "close_trade", "out_order_no": "Q2"}), c.charset)
			takenXML(t, call(map[string]string{"service": "close_trade", "out_order_no": "Q2"}), c.charset)
			a := readXML(t, call(map[string]string{"service": "single_trade_query", "out_trade_no": "Q2"}), c.charset)
			assertStrings(t, map[string]string{"trade_status": "TRADE_CLOSED", "subject": "关"}, a.fields)
			assert.NotContains(t, a.fields, "buyer_id", "never paid")
			rec := w.press(t, forms["pay"])
			assert.Equal(t, http.StatusConflict, rec.Code)
			assert.Contains(t, rec.Body.String(), `<b id="error-code">TRADE_HAS_CLOSED</b>`)
			refusedWith(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "Q2", "total_amount": "1.00", "subject": "关"}), false), "TRADE_HAS_CLOSED")

			d := tradeJSON(t, w.sandbox, "Q1")[0]
			last := d.Events[len(d.Events)-1]
			assert.Equal(t, []string{"close_trade", "shop", "F", "TRADE_STATUS_NOT_AVAILD"}, []string{last.Kind, last.Source, last.Code, last.SubCode})
			assert.Equal(t, "single_trade_query", d.Events[len(d.Events)-2].Kind)
		})
	}
}

// Requests to the XML services that the gateway refuses: is_success F
// with the legacy gateway's code.
func TestLegacyXMLRefused(t *testing.T) {
	w := newLegacyWorld(t, nil)
	m := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, nil)
	tradeNo := w.paidLegacyTrade(t, m, "Z1", "1.00", "z")
	// An OpenAPI trade: the legacy services do not see it.
	open := serve(t, w.sandbox, httptest.NewRequest("GET", signedPayURL(t, w.site.URL+"/n", w.site.URL+"/r",
		map[string]any{"out_trade_no": "Z2", "total_amount": "1.00", "subject": "openapi"}), nil))
	require.Equal(t, http.StatusFound, open.Code)
	openTradeNo := tradeJSON(t, w.sandbox, "Z2")[0].TradeNo
	for _, service := range []string{"single_trade_query", "close_trade", "refund_fastpay_by_platform_nopwd"} {
		t.Run(service, func(t *testing.T) {
			p := map[string]string{"service": service, "trade_no": tradeNo}
			good := w.signedURL(t, protocol.SignTypeMD5, "utf-8", p)
			p["partner"] = "2088000000000002"
			for name, c := range map[string]struct{ target, code string }{
				"tampered":        {strings.Replace(good, "trade_no="+tradeNo, "trade_no="+openTradeNo, 1), "ILLEGAL_SIGN"},
				"no sign":         {strings.Replace(good, "&sign=", "&nosign=", 1), "ILLEGAL_SIGN"},
				"sign type":       {strings.Replace(good, "sign_type=MD5", "sign_type=RSA2", 1), "ILLEGAL_SIGN_TYPE"},
				"another partner": {w.signedURL(t, protocol.SignTypeMD5, "utf-8", p), "ILLEGAL_PARTNER"},
				"charset":         {strings.Replace(good, "_input_charset=utf-8", "_input_charset=big5", 1), "ILLEGAL_CHARSET"},
				"duplicate":       {good + "&trade_no=1", "ILLEGAL_ARGUMENT"},
			} {
				require.NotEqual(t, good, c.target, name)
				refusedXML(t, w.request(t, c.target, false), "utf-8", c.code)
			}
		})
	}
	// Without a trade named; a trade of OpenAPI's.
	refusedXML(t, w.call(t, protocol.SignTypeMD5, "gbk", false, map[string]string{"service": "close_trade"}), "gbk", "ILLEGAL_ARGUMENT")
	refusedXML(t, w.call(t, protocol.SignTypeMD5, "utf-8", false, map[string]string{"service": "single_trade_query"}), "utf-8", "ILLEGAL_ARGUMENT")
	refusedXML(t, w.call(t, protocol.SignTypeMD5, "utf-8", false, map[string]string{"service": "single_trade_query", "trade_no": openTradeNo}), "utf-8", "TRADE_NOT_EXIST")
	refusedXML(t, w.call(t, protocol.SignTypeMD5, "utf-8", false, map[string]string{"service": "close_trade", "trade_no": openTradeNo}), "utf-8", "TRADE_NOT_EXIST")
	// A service that the sandbox does not play: the error page.
	refusedWith(t, w.call(t, protocol.SignTypeMD5, "utf-8", false, map[string]string{"service": "send_goods_confirm_by_platform"}), "ILLEGAL_SERVICE")
}

// verifyBatchNotify verifies a batch_refund_notify as a shop does: the
// form decoded once, the signature over its bytes in charset with v, its
// sign_type signType; then notify_verify asked over HTTP. It returns
// the parameters in UTF-8.
func (w *legacyWorld) verifyBatchNotify(ctx context.Context, body []byte, v protocol.Verifier, charset string) (map[string]string, error) {
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	raw := map[string]string{}
	for k, vals := range q {
		if len(vals) != 1 {
			return nil, fmt.Errorf("%s given %d times", k, len(vals))
		}
		raw[k] = vals[0]
	}
	if raw["sign_type"] != v.SignType() {
		return nil, fmt.Errorf("sign_type %q", raw["sign_type"])
	}
	if err := v.Verify(protocol.LegacyContent(raw), raw["sign"]); err != nil {
		return nil, err
	}
	params := map[string]string{}
	for k, val := range raw {
		if params[k], err = protocol.DecodeCharset([]byte(val), charset); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	verify := url.Values{"service": {"notify_verify"}, "partner": {w.vec.Partner}, "notify_id": {params["notify_id"]}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.gateway.URL+"/gateway.do?"+verify.Encode(), nil)
	if err != nil {
		return nil, err
	}
	res, err := w.gateway.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	if string(answer) != "true" {
		return nil, fmt.Errorf("notify_verify answered %q", answer)
	}
	return params, nil
}

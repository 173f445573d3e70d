package protocol

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refundDay is 2024-05-21 10:20:30 in Beijing, the vectors' refund_date.
var refundDay = time.Date(2024, 5, 21, 2, 20, 30, 0, time.UTC)

// The seller's refund links of the vectors: the token's claims give the
// vector's signed gateway URL.
func TestLegacyRefundURLVectors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	n := 0
	for _, c := range v.Cases {
		if c.Kind != "refund_url" {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			p := vectorPartner(t, v, c)
			got, err := p.RefundURL(fieldsOf(t, string(c.TokenClaims)), c.SiteNotifyURL, p.Now())
			require.NoError(t, err)
			gu, err := url.Parse(got)
			require.NoError(t, err)
			wu, err := url.Parse(c.GatewayURL)
			require.NoError(t, err)
			assert.Equal(t, wu.Host+wu.Path, gu.Host+gu.Path)
			assert.Equal(t, wu.Query(), gu.Query())
			assert.Equal(t, c.Sign, gu.Query().Get("sign"))
			assert.Equal(t, c.Charset, gu.Query().Get("_input_charset"), "the charset is in the URL's query")
		})
	}
	assert.Equal(t, 3, n)
}

// Alipay's own refund_fastpay_by_platform_pwd example: its string to sign
// signs as Alipay says with its MD5 key; and RefundURL, given the same
// refund (with a batch_no and a notify_url that it accepts), signs its
// own string the same way.
func TestLegacyRefundDocVector(t *testing.T) {
	const (
		docString = "_input_charset=utf-8&batch_no=123456789&batch_num=1&detail_data=1^0.01^test&notify_url=/some_url" +
			"&partner=1000000000000000&refund_date=2015-01-01 00:00:00&seller_user_id=1000000000000000&service=refund_fastpay_by_platform_pwd"
		docKey  = "10000000000000000000000000000000"
		docSign = "def57a58e1ac21f70c45e41bd3697368"
	)
	params := map[string]string{"sign_type": "MD5", "sign": "ignored"}
	for _, kv := range strings.Split(docString, "&") {
		k, val, _ := strings.Cut(kv, "=")
		params[k] = val
	}
	key, err := NewMD5Key(docKey)
	require.NoError(t, err)
	content := LegacyContent(params)
	assert.Equal(t, docString, string(content))
	sign, err := key.Sign(content)
	require.NoError(t, err)
	assert.Equal(t, docSign, sign)
	assert.NoError(t, key.Verify(content, docSign))

	at := time.Date(2015, 1, 1, 0, 0, 0, 0, Beijing)
	p := &Legacy{Partner: "1000000000000000", SellerID: "1000000000000000", Charset: "utf-8",
		Signer: key, Verifier: key, Gateway: GatewayMapi}
	claims := fieldsOf(t, `{"scope":"refund","exp":1420041900,"batch_no":"20150101001","detail_data":"1^0.01^test"}`)
	got, err := p.RefundURL(claims, "https://shop.example.com/some_url", at)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(got, GatewayMapi+"?"))
	q, err := url.ParseQuery(strings.TrimPrefix(got, GatewayMapi+"?"))
	require.NoError(t, err)
	want := strings.NewReplacer("batch_no=123456789", "batch_no=20150101001", "notify_url=/some_url",
		"notify_url=https://shop.example.com/some_url").Replace(docString)
	sum := md5.Sum([]byte(want + docKey))
	assert.Equal(t, hex.EncodeToString(sum[:]), q.Get("sign"))
	assert.Equal(t, "MD5", q.Get("sign_type"))
	q.Del("sign")
	q.Del("sign_type")
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(q)) {
		pairs = append(pairs, k+"="+q.Get(k))
	}
	assert.Equal(t, want, strings.Join(pairs, "&"))
}

// refundBase is a valid refund body of the vectors' trades on refundDay.
const refundBase = `"batch_no":"202405210001","refunds":[{"trade_no":"2024052021001004680000000101","amount":"1","reason":"r"}]`

// A refund's body: batch_no, refunds or detail_data, notify_url; each
// refusal names the field, and nothing is sent.
func TestLegacyRefundClaimErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	p := vectorPartner(t, v, legacyCaseNamed(t, v, "md5_refund_nopwd_utf8"))
	p.Charset = "gbk"
	xml, _ := legacyAnswer(t, v, "refund_nopwd_success")
	calls, sent := testMapi(t, p, xmlAnswer(200, xml))
	items := func(n int) string {
		var b []string
		for i := range n {
			b = append(b, fmt.Sprintf(`{"trade_no":"T%d","amount":"0.01","reason":"r"}`, i))
		}
		return "[" + strings.Join(b, ",") + "]"
	}
	const item = `"trade_no":"2024052021001004680000000101","amount":"1"`
	for _, tc := range []struct{ body, notifyURL, field, says string }{
		{`{"refunds":[{` + item + `}]}`, "", "batch_no", "required"},
		{`{"batch_no":"","refunds":[{` + item + `}]}`, "", "batch_no", "required"},
		{`{"batch_no":202405210001,"refunds":[{` + item + `}]}`, "", "batch_no", "must be a string"},
		{`{"batch_no":"202405200001","refunds":[{` + item + `}]}`, "", "batch_no", "20240521"},
		{`{"batch_no":"20240521000","refunds":[{` + item + `}]}`, "", "batch_no", "000"},
		{`{"batch_no":"2024052101","refunds":[{` + item + `}]}`, "", "batch_no", "3 to 24"},
		{`{"batch_no":"202405210001"}`, "", "refunds", "required (or detail_data)"},
		{`{` + refundBase + `,"detail_data":"1^1^r"}`, "", "refunds", "not both"},
		{`{"batch_no":"202405210001","refunds":"1^1^r"}`, "", "refunds", "must be a list"},
		{`{"batch_no":"202405210001","refunds":{}}`, "", "refunds", "must be a list"},
		{`{"batch_no":"202405210001","refunds":[]}`, "", "refunds", "no refunds"},
		{`{"batch_no":"202405210001","refunds":[null]}`, "", "refunds", "refund 1: must be an object"},
		{`{"batch_no":"202405210001","refunds":[{` + item + `,"fee":"1"}]}`, "", "refunds", "fee is not a member"},
		{`{"batch_no":"202405210001","refunds":[{"amount":"1"}]}`, "", "refunds", "trade_no is required"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1"}]}`, "", "refunds", "amount is required"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":1,"amount":"1"}]}`, "", "refunds", "trade_no must be a string"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":true}]}`, "", "refunds", "string or a number"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":1e2}]}`, "", "refunds", "at most 2 decimals"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":"1.001"}]}`, "", "refunds", "at most 2 decimals"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":"0"}]}`, "", "refunds", "from 0.01"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":"1","reason":null}]}`, "", "refunds", "reason must be a string"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":"1","reason":"a#b"}]}`, "", "refunds", "^ $ | or #"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":"1","reason":"😀"}]}`, "", "refunds", "gbk cannot hold"},
		{`{"batch_no":"202405210001","refunds":[{"trade_no":"T1","amount":"1"},{"trade_no":"T1","amount":"2"}]}`, "", "refunds", "refund 2: trade_no T1 is already"},
		{`{"batch_no":"202405210001","refunds":` + items(1001) + `}`, "", "refunds", "at most 1000"},
		{`{"batch_no":"202405210001","detail_data":""}`, "", "detail_data", "no refunds"},
		{`{"batch_no":"202405210001","detail_data":["1^1^r"]}`, "", "detail_data", "must be a string"},
		{`{"batch_no":"202405210001","detail_data":"T1^1^r$seller@example.com^2088000000000001^0.01"}`, "", "detail_data", "fee refunds"},
		{`{"batch_no":"202405210001","detail_data":"T1^1"}`, "", "detail_data", "trade_no^amount^reason"},
		{`{` + refundBase + `}`, "", "notify_url", "required"},
		{`{` + refundBase + `,"notify_url":""}`, "", "notify_url", "required"},
		{`{` + refundBase + `,"notify_url":1}`, "https://shop.example.com/alipay/notify", "notify_url", "must be a string"},
		{`{` + refundBase + `,"notify_url":"https://shop.example.com/n?x=1"}`, "", "notify_url", "no query"},
		{`{` + refundBase + `,"notify_url":"/alipay/notify"}`, "", "notify_url", "absolute"},
		{`{` + refundBase + `,"refund_date":"2024-05-21 00:00:00"}`, "", "refund_date", "set by the sidecar"},
		{`{` + refundBase + `,"batch_num":"1"}`, "", "batch_num", "set by the sidecar"},
		{`{` + refundBase + `,"seller_user_id":"2088000000000009"}`, "", "seller_user_id", "set by the sidecar"},
		{`{` + refundBase + `,"seller_email":"x@example.com"}`, "", "seller_email", "set by the sidecar"},
		{`{` + refundBase + `,"out_trade_no":"L1"}`, "", "out_trade_no", "it takes batch_no, detail_data, refunds, notify_url"},
	} {
		_, err := p.Call(context.Background(), "refund_fastpay_by_platform_nopwd", nil, fieldsOf(t, tc.body), tc.notifyURL)
		var ce *ClaimError
		require.ErrorAs(t, err, &ce, tc.body)
		assert.Equal(t, tc.field, ce.Claim, tc.body)
		assert.Contains(t, ce.Error(), tc.says, tc.body)
	}
	assert.Zero(t, calls.Load(), "a refused body is never sent")

	// 1000 items are one batch; the body's notify_url wins over the site's.
	_, err := p.Call(context.Background(), "refund_fastpay_by_platform_nopwd", nil,
		fieldsOf(t, `{"batch_no":"202405210001","refunds":`+items(1000)+`,"notify_url":"https://shop.example.com/r"}`), "https://shop.example.com/alipay/notify")
	require.NoError(t, err)
	assert.Equal(t, "1000", sent().form.Get("batch_num"))
	assert.Equal(t, "https://shop.example.com/r", sent().form.Get("notify_url"))
	assert.Equal(t, "2024-05-21 10:20:30", sent().form.Get("refund_date"))
	assert.Equal(t, v.Partner, sent().form.Get("seller_user_id"))
}

// A refund token's claims: the JWT's own and scope are not the refund's,
// and are left out; anything else is refused by name.
func TestLegacyRefundURLClaims(t *testing.T) {
	v := testvec.LoadLegacy(t)
	p := vectorPartner(t, v, legacyCaseNamed(t, v, "md5_refund_pwd_utf8"))
	registered := `"iss":"shop","sub":"seller","aud":"2088000000000001","exp":1716258330,"nbf":1716258000,"iat":1716258030,"jti":"r1","scope":"refund"`
	got, err := p.RefundURL(fieldsOf(t, `{`+registered+`,`+refundBase+`}`), "https://shop.example.com/alipay/notify", refundDay)
	require.NoError(t, err)
	u, err := url.Parse(got)
	require.NoError(t, err)
	q := u.Query()
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"} {
		assert.NotContains(t, q, name)
	}
	assert.Equal(t, RefundService, q.Get("service"))
	assert.Equal(t, "2024052021001004680000000101^1.00^r", q.Get("detail_data"))
	assert.Equal(t, "2024-05-21 10:20:30", q.Get("refund_date"), "refund_date is the time given")

	for _, tc := range []struct{ claims, field string }{
		{`{"scope":"refund",` + refundBase + `,"out_trade_no":"L1"}`, "out_trade_no"},
		{`{"scope":"refund",` + refundBase + `,"Batch_No":"202405210002"}`, "Batch_No"},
		{`{"scope":"refund",` + refundBase + `,"service":"refund_fastpay_by_platform_nopwd"}`, "service"},
		{`{"scope":"refund",` + refundBase + `,"refund_date":"2024-05-21 00:00:00"}`, "refund_date"},
		{`{"scope":"refund","refunds":[{"trade_no":"T1","amount":"1"}]}`, "batch_no"},
		{`{"scope":"refund","batch_no":"202405210001"}`, "refunds"},
		{`{"scope":"refund",` + refundBase + `}`, "notify_url"}, // no notify URL known
	} {
		_, err := p.RefundURL(fieldsOf(t, tc.claims), "", refundDay)
		var ce *ClaimError
		require.ErrorAs(t, err, &ce, tc.claims)
		assert.Equal(t, tc.field, ce.Claim, tc.claims)
	}
	// The day is the one given, not the clock's.
	_, err = p.RefundURL(fieldsOf(t, `{`+refundBase+`}`), "https://shop.example.com/alipay/notify", refundDay.Add(24*time.Hour))
	var ce *ClaimError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "batch_no", ce.Claim)
}

// A refund batch's result names no seller: it verifies without one, and
// is refused when it names another; trade notifications and returns must
// still name the seller.
func TestLegacyRefundNotifySeller(t *testing.T) {
	v := testvec.LoadLegacy(t)
	key, err := NewMD5Key(v.MD5Key)
	require.NoError(t, err)
	refund := map[string]string{"notify_time": "2024-05-21 10:21:05", "notify_type": NotifyTypeBatchRefund,
		"notify_id": "n1", "batch_no": "202405210001", "success_num": "1", "result_details": "T1^1.00^SUCCESS"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	trade := with(refund, "notify_type", "trade_status_sync", "trade_status", "TRADE_SUCCESS")
	other := "2088000000000009"
	for _, tc := range []struct {
		name        string
		params      map[string]string
		event       string
		sellerEmail bool
		ok          bool
	}{
		{"refund result", refund, EventNotify, false, true},
		{"refund result, seller_email configured", refund, EventNotify, true, true},
		{"refund result naming the seller", with(refund, "seller_id", v.Partner), EventNotify, false, true},
		{"refund result naming another seller", with(refund, "seller_id", other), EventNotify, false, false},
		{"refund result naming another seller_email", with(refund, "seller_email", "x@example.com"), EventNotify, true, false},
		{"refund result naming only a seller_id, seller_email configured", with(refund, "seller_id", other), EventNotify, true, true},
		{"refund result as a return", with(refund, "is_success", "T"), EventReturn, false, false},
		{"trade notification without a seller", trade, EventNotify, false, false},
		{"notification without notify_type or seller", with(refund, "notify_type", ""), EventNotify, false, false},
		{"trade notification", with(trade, "seller_id", v.Partner), EventNotify, false, true},
	} {
		p := &Legacy{Partner: v.Partner, SellerID: v.Partner, Charset: "utf-8", Signer: key, Verifier: key}
		if tc.sellerEmail {
			p.SellerID, p.SellerEmail = "", v.SellerEmail
		}
		body, err := EncodeLegacy(tc.params, "utf-8", key)
		require.NoError(t, err)
		cb, err := p.ParseCallback(body)
		require.NoError(t, err)
		err = p.VerifyCallback(context.Background(), cb, tc.event)
		if tc.ok {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorIs(t, err, ErrNotOurs, tc.name)
		}
	}
	// An empty seller_id, which nothing signs, says nothing.
	p := &Legacy{Partner: v.Partner, SellerID: v.Partner, Charset: "utf-8", Signer: key, Verifier: key}
	body, err := EncodeLegacy(refund, "utf-8", key)
	require.NoError(t, err)
	cb, err := p.ParseCallback(body + "&seller_id=")
	require.NoError(t, err)
	assert.NoError(t, p.VerifyCallback(context.Background(), cb, EventNotify))
}

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	// The QR decoder that plays the buyer's phone camera: gozxing is a
	// port of ZXing, the decoder behind most phone scanners, in pure Go
	// (it needs only golang.org/x/text and x/xerrors, no cgo or zbar), and
	// it was written apart from the encoder the sidecar draws with
	// (boombuler/barcode), so a code it reads is not merely read back by
	// its own maker.
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFaceToFace runs the Python shop's face-to-face and app payments with
// the real sidecar and sandbox: the QR code that the buyer scans, the
// counter's barcode pay, and the mobile app's order string. The sidecar
// polls a barcode payment every second for at most 4 s, so that the
// never-confirmed case ends in a few seconds.
func TestFaceToFace(t *testing.T) {
	kind := shopKindNamed(t, "python")
	needTool(t, kind.tool)
	e := newShopEnv(t, kind)
	e.startShop(t)
	caddyfile := caddyGlobals +
		sidecarSite(e.sitePort, e.gateway, fmt.Sprintf("127.0.0.1:%d", e.shopPort), "barcode_poll 1s", "barcode_wait 4s") +
		sandboxSite(e.gatewayPort, "notify_retry 1s 1s 2s 2s")
	e.caddy = startCaddy(t, "caddy-facetoface", caddyfile, e.site+"/", e.gateway+"/")

	t.Run("qr", e.testQRPay)
	t.Run("counter", e.testCounter)
	t.Run("app", e.testAppPay)
}

// testQRPay: the order page's Pay by QR code shows the shop's QR page,
// which frames the sidecar's page of a qr pay token (the code as an image,
// the subject, the amount, the code's text) and the order's status.
// Decoded, the image is the code's text, a sandbox URL; opened in another
// tab (the buyer's phone) it is the cashier; Pay there, and the status
// frame, which reloads itself, turns paid once the notification is in.
func (e *shopEnv) testQRPay(t *testing.T) {
	tab := newTab(t)
	open(t, tab, e.site+"/")
	clickAndLoad(t, tab, "buy-tea")
	no := e.orderFromLocation(t, location(t, tab))
	require.Equal(t, "unpaid", textOf(t, tab, "status"))

	resp := clickAndLoad(t, tab, "pay-qr")
	require.EqualValues(t, http.StatusOK, resp.Status)
	require.Equal(t, e.site+"/orders/"+no+"/qr", location(t, tab))
	// The frames are loaded: the top page's load waits for them.
	qrSrc := inFrame(t, tab, "qr-frame", `location.href`)
	require.True(t, strings.HasPrefix(qrSrc, e.site+"/alipay/pay?token="), "the code's frame shows %s, not the sidecar's page", qrSrc)
	assert.Equal(t, teaSubject, inFrame(t, tab, "qr-frame", `document.getElementById("subject").textContent.trim()`))
	assert.Equal(t, teaAmount, inFrame(t, tab, "qr-frame", `document.getElementById("amount").textContent.trim()`))
	code := inFrame(t, tab, "qr-frame", `document.getElementById("qr-code").textContent.trim()`)
	require.True(t, strings.HasPrefix(code, e.gateway+"/sandbox/qr/"), "the QR code's text %q is not the sandbox's", code)
	assert.Equal(t, "unpaid", frameText(t, tab, "status-frame", "status"))

	// The image as the page carries it (a data: URL), and as the browser
	// draws it (the framed page, with the white around the code that a
	// scanner needs): both decode to the text.
	src := inFrame(t, tab, "qr-frame", `document.getElementById("qr").src`)
	data, ok := strings.CutPrefix(src, "data:image/png;base64,")
	require.True(t, ok, "#qr is not a PNG data URL: %.60s", src)
	raw, err := base64.StdEncoding.DecodeString(data)
	require.NoError(t, err)
	assert.Equal(t, code, decodeQR(t, raw), "the image's code")
	shot := browserGet(t, tab, "screenshot #qr-frame", chromedp.Screenshot(chromedp.ID("qr-frame")))
	assert.Equal(t, code, decodeQR(t, shot), "the code as the browser shows it")
	time.Sleep(2500 * time.Millisecond) // the status frame reloads meanwhile
	assert.Equal(t, "unpaid", e.order(t, no).Status, "showing the code pays nothing")
	assert.Equal(t, qrSrc, inFrame(t, tab, "qr-frame", `location.href`), "the code's frame is not reloaded")

	// The buyer's phone scans the code: the cashier of the order.
	phone := newTab(t)
	resp = open(t, phone, code)
	require.EqualValues(t, http.StatusOK, resp.Status)
	require.True(t, strings.HasPrefix(location(t, phone), e.gateway+"/sandbox/cashier/"), "the scan led to %s", location(t, phone))
	assert.Equal(t, teaSubject, textOf(t, phone, "subject"))
	assert.Equal(t, teaAmount, textOf(t, phone, "amount"))
	clickAndLoad(t, phone, "pay")
	assert.True(t, hasElement(t, phone, "paid"), "the phone says paid")

	// The QR page's status frame says paid, with a link to the order.
	deadline := time.Now().Add(20 * time.Second)
	for frameText(t, tab, "status-frame", "status") != "paid" {
		if time.Now().After(deadline) {
			t.Fatalf("the status frame is not paid after 20 s\nCaddy's log:\n%s", tail(e.caddy.logPath, 30))
		}
		time.Sleep(300 * time.Millisecond)
	}
	assert.Equal(t, "/orders/"+no, inFrame(t, tab, "status-frame", `document.getElementById("done").getAttribute("href")`))
	o := e.order(t, no)
	assert.Equal(t, "paid", o.Status)
	assert.Equal(t, teaAmount, o.TotalAmount)
	assert.Equal(t, 1, o.Notifications)
	assert.NotNil(t, o.PaidAt)

	clickAndLoad(t, tab, "order-link")
	assert.Equal(t, "paid", textOf(t, tab, "status"))
	assert.False(t, hasElement(t, tab, "pay-qr"), "a paid order has no QR link")
	resp = open(t, tab, e.site+"/orders/"+no+"/qr")
	assert.Equal(t, e.site+"/orders/"+no, location(t, tab), "a paid order's QR page leads to the order")
}

// inFrame evaluates a JavaScript expression of a string in the document of
// the iframe with the id (of the shop's origin, or the sidecar's: the same).
func inFrame(t *testing.T, tab context.Context, frameID, expr string) string {
	t.Helper()
	js := `(() => { const document = window.document.getElementById(` + strconv.Quote(frameID) + `).contentDocument;` +
		` const location = document.location; return String(` + expr + `); })()`
	return browserGet(t, tab, "read #"+frameID+": "+expr, chromedp.Evaluate[string](js))
}

// frameText is the trimmed text of the element with the id in the iframe,
// or "<none>" while the frame (reloading) has none.
func frameText(t *testing.T, tab context.Context, frameID, id string) string {
	t.Helper()
	return inFrame(t, tab, frameID, `(document.getElementById(`+strconv.Quote(id)+`) || {textContent: "<none>"}).textContent.trim()`)
}

// decodeQR reads the QR code of a PNG as a phone's scanner does.
func decodeQR(t *testing.T, pngBytes []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngBytes))
	require.NoError(t, err, "not a PNG")
	return decodeQRImage(t, img)
}

func decodeQRImage(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	require.NoError(t, err)
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	require.NoError(t, err, "no QR code in the image")
	return res.GetText()
}

// Sandbox payment codes: 18 digits starting 28, whose last four choose the
// outcome.
const (
	authCodeConfirmed = "281234567890121111" // 10003, paid 2 s later
	authCodeNever     = "281234567890122222" // 10003, never paid: cancelled
	authCodeInvalid   = "281234567890123333" // 40004 ACQ.PAYMENT_AUTH_CODE_INVALID
)

// barcodeRecord is the shop's record of a counter payment.
type barcodeRecord struct {
	Barcode *struct {
		Result  string  `json:"result"`
		TradeNo *string `json:"trade_no"`
	} `json:"barcode"`
}

// testCounter: the counter page charges a payment code for a new order; the
// sidecar settles it (pay, queries, a cancel) before the page answers.
func (e *shopEnv) testCounter(t *testing.T) {
	for _, c := range []struct {
		name, authCode, result string
		paid                   bool
	}{
		{"confirmed", authCodeConfirmed, "paid", true},
		{"invalid", authCodeInvalid, "failed", false},
		{"never", authCodeNever, "cancelled", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab := newTab(t)
			open(t, tab, e.site+"/")
			clickAndLoad(t, tab, "counter")
			require.Equal(t, e.site+"/counter", location(t, tab))
			browserDo(t, tab, "fill in the counter's form",
				chromedp.SetValue(chromedp.ID("product"), "mug"),
				chromedp.SendKeys(chromedp.ID("auth-code"), c.authCode))
			start := time.Now()
			resp := clickAndLoad(t, tab, "charge")
			took := time.Since(start)
			require.EqualValues(t, http.StatusOK, resp.Status)
			assert.Equal(t, c.result, textOf(t, tab, "barcode-result"))
			no, ok := strings.CutPrefix(location(t, tab), e.site+"/counter/")
			require.True(t, ok, "the charge led to %s", location(t, tab))
			assert.Equal(t, "/orders/"+no, browserGet(t, tab, "read the order link",
				chromedp.Evaluate[string](`document.getElementById("order-link").getAttribute("href")`)))

			var rec barcodeRecord
			_, body := httpGet(t, e.site+"/orders/"+no+".json")
			require.NoError(t, json.Unmarshal([]byte(body), &rec), body)
			require.NotNil(t, rec.Barcode, "the shop recorded the result: %s", body)
			assert.Equal(t, c.result, rec.Barcode.Result)

			switch c.name {
			case "confirmed":
				// Queried each second until the buyer confirmed, 2 s on.
				assert.GreaterOrEqual(t, took, 1500*time.Millisecond, "answered once paid, not before")
				tradeNo := textOf(t, tab, "barcode-trade-no")
				assert.NotEmpty(t, tradeNo)
				o := e.waitPaid(t, no, 20*time.Second)
				assert.Equal(t, mugAmount, o.TotalAmount)
				assert.Equal(t, 1, o.Notifications)
				var paid struct {
					TradeNo string `json:"trade_no"`
				}
				_, body = httpGet(t, e.site+"/orders/"+no+".json")
				require.NoError(t, json.Unmarshal([]byte(body), &paid))
				assert.Equal(t, tradeNo, paid.TradeNo, "the notification's trade_no is the counter's")
			case "never":
				// Polled for barcode_wait, then cancelled.
				assert.GreaterOrEqual(t, took, 3*time.Second, "answered after barcode_wait")
			}
			if !c.paid {
				time.Sleep(1500 * time.Millisecond) // no payment arrives later either
				o := e.order(t, no)
				assert.Equal(t, "unpaid", o.Status)
				assert.Equal(t, 0, o.Notifications)
			}

			clickAndLoad(t, tab, "order-link")
			assert.Equal(t, e.site+"/orders/"+no, location(t, tab))
			if c.paid {
				waitText(t, tab, "status", "paid", 20*time.Second)
			} else {
				assert.Equal(t, "unpaid", textOf(t, tab, "status"))
			}
			assert.Equal(t, c.result, textOf(t, tab, "counter-result"))
		})
	}

	// A code that is no payment code is refused by the shop, with no order.
	resp, body := httpPostForm(t, e.site+"/counter", "product=mug&auth_code=12345")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, `id="counter-error"`)
}

// testAppPay: the app's backend call makes an order and gets the sidecar's
// signed order string; the sandbox's page of the app SDK opens the cashier
// from it, and Pay pays the order through the notification. The same
// string with its amount changed is refused.
func (e *shopEnv) testAppPay(t *testing.T) {
	req, err := http.NewRequest(http.MethodPost, e.site+"/app/orders", strings.NewReader(`{"product":"mug"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, body := httpDo(t, req)
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	var app struct {
		OutTradeNo  string `json:"out_trade_no"`
		OrderString string `json:"order_string"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &app), body)
	require.NotEmpty(t, app.OutTradeNo)
	p, err := url.ParseQuery(app.OrderString)
	require.NoError(t, err, app.OrderString)
	assert.Equal(t, "alipay.trade.app.pay", p.Get("method"))
	assert.Equal(t, e.site+"/alipay/notify", p.Get("notify_url"), "the sidecar's notify URL, from the shop's call")
	assert.Contains(t, p.Get("biz_content"), `"out_trade_no":"`+app.OutTradeNo+`"`)
	assert.NotEmpty(t, p.Get("sign"))
	assert.Equal(t, "unpaid", e.order(t, app.OutTradeNo).Status)

	tab := newTab(t)
	changed := url.Values{}
	for k, v := range p {
		changed[k] = v
	}
	biz := p.Get("biz_content")
	require.Contains(t, biz, `"total_amount":"`+mugAmount+`"`)
	changed.Set("biz_content", strings.Replace(biz, `"total_amount":"`+mugAmount+`"`, `"total_amount":"0.01"`, 1))
	tampered := changed.Encode()
	resp2 := open(t, tab, e.gateway+"/sandbox/app?order_string="+url.QueryEscape(tampered))
	assert.EqualValues(t, http.StatusBadRequest, resp2.Status, "an order string with its amount changed is refused")
	assert.False(t, hasElement(t, tab, "pay"), "no cashier")

	resp2 = open(t, tab, e.gateway+"/sandbox/app?order_string="+url.QueryEscape(app.OrderString))
	require.EqualValues(t, http.StatusOK, resp2.Status)
	require.True(t, strings.HasPrefix(location(t, tab), e.gateway+"/sandbox/cashier/"), location(t, tab))
	assert.Equal(t, mugSubject, textOf(t, tab, "subject"))
	assert.Equal(t, mugAmount, textOf(t, tab, "amount"))
	clickAndLoad(t, tab, "pay")
	assert.True(t, hasElement(t, tab, "paid"), "the app's cashier says paid")

	o := e.waitPaid(t, app.OutTradeNo, 20*time.Second)
	assert.Equal(t, mugAmount, o.TotalAmount)
	assert.Equal(t, 1, o.Notifications)

	// Not a product: refused, as the front page's form refuses it.
	req, err = http.NewRequest(http.MethodPost, e.site+"/app/orders", strings.NewReader(`{"product":"car"}`))
	require.NoError(t, err)
	resp, body = httpDo(t, req)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
}

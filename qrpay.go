package alipay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"image"
	"image/draw"
	"image/png"
	"net/http"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// QR-code pay (face-to-face precreate): a pay token with product qr makes
// the sidecar ask Alipay for the order's QR code, which the buyer scans
// with the Alipay app; the payment's notification follows as for any
// payment.

// serveQRPay answers a QR-code order: {"qr_code", "out_trade_no"} with
// Accept: application/json, and otherwise a page that shows the code.
func (h *Handler) serveQRPay(w http.ResponseWriter, r *http.Request, ev *event, order *protocol.Order, notifyURL string) error {
	code, err := h.client.Precreate(r.Context(), order, notifyURL)
	var refused *protocol.PrecreateError
	var ce *protocol.CallError
	switch {
	case errors.As(err, &refused):
		return ev.replyJSON(w, http.StatusBadGateway, outcomeUpstreamFailed, err.Error(), map[string]string{
			"error": "alipay refused the order", "code": refused.Code, "sub_code": refused.SubCode, "sub_msg": refused.SubMsg})
	case errors.As(err, &ce):
		status := http.StatusBadGateway
		if ce.Kind == protocol.CallTimeout {
			status = http.StatusGatewayTimeout
		}
		body := map[string]string{"error": err.Error()}
		for k, v := range ce.Fields {
			body[k] = v
		}
		return ev.replyJSON(w, status, outcomeUpstreamFailed, err.Error(), body)
	case err != nil:
		return ev.replyJSON(w, http.StatusInternalServerError, outcomeInvalid, err.Error(), map[string]string{"error": "internal error"})
	}
	ev.outcome = outcomeOK
	w.Header().Set("Cache-Control", "no-store")
	if caddyconf.AcceptsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(struct {
			QRCode     string `json:"qr_code"`
			OutTradeNo string `json:"out_trade_no"`
		}{code, order.OutTradeNo})
	}
	img, err := qrPNG(code)
	if err != nil {
		return ev.reply(w, http.StatusInternalServerError, outcomeInvalid, err.Error(), "internal error\n")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return qrPageTemplate.Execute(w, qrPage{Subject: order.Subject, Amount: order.TotalAmount, Code: code,
		Image: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(img))})
}

// qrPNG draws a QR code of text as a PNG, 320 pixels square, with medium
// error correction, as a phone's camera reads a screen easily, and a
// white quiet zone of about four modules around it, which scanners need
// and which a page with a dark background would not give.
func qrPNG(text string) ([]byte, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return nil, err
	}
	const size = 320
	margin := size * 4 / (code.Bounds().Dx() + 8)
	if code, err = barcode.Scale(code, size-2*margin, size-2*margin); err != nil {
		return nil, err
	}
	img := image.NewGray(image.Rect(0, 0, size, size))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	draw.Draw(img, code.Bounds().Add(image.Pt(margin, margin)), code, image.Point{}, draw.Src)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type qrPage struct {
	Subject, Amount, Code string
	Image                 template.URL
}

var qrPageTemplate = template.Must(template.New("qr").Parse(`<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>扫码支付 Pay with Alipay</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto;text-align:center}img{width:320px;height:320px;image-rendering:pixelated}code{word-break:break-all}</style>
</head><body>
<h1>支付宝扫码支付 Scan to pay</h1>
<p id="subject">{{.Subject}}</p>
<p>¥<span id="amount">{{.Amount}}</span></p>
<p><img id="qr" src="{{.Image}}" alt="QR code"></p>
<p>用支付宝扫一扫 Open Alipay and scan the code.</p>
<p><small><code id="qr-code">{{.Code}}</code></small></p>
</body></html>
`))

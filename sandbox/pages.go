package sandbox

import (
	"bytes"
	"html/template"
	"net/http"
)

// The sandbox's pages: plain HTML forms that work without JavaScript, with
// stable ids for browser tests (pay, cancel, subject, amount, status).

var pageLayout = `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{block "title" .}}{{end}} - Alipay sandbox 支付宝沙箱</title>
<style>
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;background:#f5f7fa;margin:0;color:#333}
header{background:#1677ff;color:#fff;padding:14px 24px;font-size:18px}
main{max-width:480px;margin:32px auto;background:#fff;border-radius:8px;padding:24px;box-shadow:0 1px 4px #0002}
.amount{font-size:32px;color:#f60;margin:8px 0}
button{font-size:16px;padding:10px 28px;border-radius:4px;border:1px solid #1677ff;cursor:pointer}
#pay{background:#1677ff;color:#fff}#cancel{background:#fff;color:#1677ff}
form{display:inline-block;margin:16px 8px 0 0}.muted{color:#888;font-size:13px}.error{color:#c00}
</style></head>
<body><header>支付宝 Alipay <span class="muted" style="color:#dde">sandbox · 本地沙箱</span></header>
<main>{{block "main" .}}{{end}}</main></body></html>`

var cashierTemplate = template.Must(template.Must(template.New("cashier").Parse(pageLayout)).Parse(`
{{define "title"}}收银台 Cashier{{end}}
{{define "main"}}
<p id="subject">{{.Subject}}</p>
<p class="amount">¥<span id="amount">{{.Amount}}</span></p>
<p class="muted">商户订单号 Order {{.OutTradeNo}}<br>交易号 Trade {{.TradeNo}}{{if .Service}}<br>即时到账 <span id="service">{{.Service}}</span>{{end}}</p>
{{if .Paid}}
<p id="status">{{.Status}}</p><p>已支付 Paid.</p>
{{else}}
<p id="status" class="muted">{{.Status}}</p>
<form method="post" action="/sandbox/cashier/{{.ID}}/pay"><button id="pay" type="submit">Pay 确认付款</button></form>
<form method="post" action="/sandbox/cashier/{{.ID}}/cancel"><button id="cancel" type="submit">Cancel 取消</button></form>
<p class="muted">This is a local sandbox: no money moves.</p>
{{end}}
{{end}}`))

var errorPageTemplate = template.Must(template.Must(template.New("error").Parse(pageLayout)).Parse(`
{{define "title"}}错误 Error{{end}}
{{define "main"}}
<h2 class="error">出错了 Something went wrong</h2>
<p>错误代码 Error code: <b id="error-code">{{.Code}}</b></p>
<p>错误原因 Reason: <span id="error-reason">{{.Reason}}</span></p>
{{end}}`))

// renderPage writes a sandbox page; data is a tradeView or *gatewayError.
func renderPage(w http.ResponseWriter, status int, t *template.Template, data any) {
	if ge, ok := data.(*gatewayError); ok {
		data = struct{ Code, Reason string }{ge.code, ge.reason}
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

package sandbox

import (
	"bytes"
	"html/template"
	"net/http"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
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
#pay,#confirm{background:#1677ff;color:#fff}#cancel{background:#fff;color:#1677ff}
form{display:inline-block;margin:16px 8px 0 0}.muted{color:#888;font-size:13px}.error{color:#c00}
.wide main{max-width:1100px;margin:16px auto;padding:18px 28px}
.wide h1{font-size:22px;margin:2px 0 8px}.wide h2{font-size:18px;margin:18px 0 6px}.wide h3{font-size:15px;margin:18px 0 6px}
.back{float:right;font-size:14px;font-weight:normal;margin-top:6px}
.wide a{color:#1677ff;text-decoration:none}.wide a:hover{text-decoration:underline}
table{border-collapse:collapse;width:100%;font-size:14px;margin:6px 0 4px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e8eaee;vertical-align:top}
thead th{background:#f5f7fa;font-weight:600;white-space:nowrap}.scroll{overflow-x:auto}
table.fields th{width:110px;color:#666;font-weight:normal;background:none}table.fields th,table.fields td{padding:4px 8px}
td.num{text-align:right;white-space:nowrap}td.time{white-space:nowrap}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.ok{color:#080}.bad{color:#c00}.tag{font-size:12px;color:#1677ff;border:1px solid #1677ff;border-radius:3px;padding:0 4px;margin-left:4px;white-space:nowrap}
.wide button{font-size:14px;padding:7px 18px}.primary{background:#1677ff;color:#fff}.secondary{background:#fff;color:#1677ff}
.actions{display:flex;gap:28px;align-items:flex-start;margin:12px 0 4px}.actions form{margin:0}
.action{max-width:420px}.action .muted{display:block;margin-top:4px}.nowrap{white-space:nowrap}
.note{border-left:3px solid #e8eaee;padding:0 0 4px 12px;margin:14px 0}.wide h4{font-size:14px;margin:6px 0}details{margin:6px 0}
</style></head>
<body class="{{block "bodyclass" .}}{{end}}"><header>支付宝 Alipay <span class="muted" style="color:#dde">sandbox · 本地沙箱</span>{{block "nav" .}}{{end}}</header>
<main>{{block "main" .}}{{end}}</main></body></html>`

var cashierTemplate = template.Must(template.Must(template.New("cashier").Parse(pageLayout)).Parse(`
{{define "title"}}收银台 Cashier{{end}}
{{define "main"}}
<p id="subject">{{.Subject}}</p>
<p class="amount">¥<span id="amount">{{.Amount}}</span></p>
<p class="muted">商户订单号 Order {{.OutTradeNo}}<br>交易号 Trade {{.TradeNo}}{{if .Service}}<br>即时到账 <span id="service">{{.Service}}</span>{{end}}</p>
{{if .Paid}}
<p id="status">{{.Status}}</p><p id="paid" class="ok">已支付 Paid.</p>
{{if eq .Product "app"}}<p class="muted">The app SDK's result: resultStatus <b id="result-status">9000</b> 订单支付成功. The shop's proof of payment is the notification, or a query.</p>{{end}}
{{if eq .Product "qr"}}<p class="muted">The buyer paid in the Alipay app; the shop learns it from the notification, or a query.</p>{{end}}
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
{{if .App}}<p id="app-result">系统繁忙，请稍后再试 · the app SDK's result: resultStatus <b id="result-status">4000</b> 系统繁忙</p>{{end}}
<p>错误代码 Error code: <b id="error-code">{{.Code}}</b></p>
<p>错误原因 Reason: <span id="error-reason">{{.Reason}}</span></p>
{{end}}`))

// An appRefusal is a gateway error as the app SDK's page shows it: the
// error page with the result that the shop's app gets (4000, 系统繁忙).
type appRefusal struct{ *gatewayError }

// cancelledTemplate is the page after Cancel at the cashier of an app or
// QR trade (a tradeView): neither has a shop page to go back to.
var cancelledTemplate = template.Must(template.Must(template.New("cancelled").Parse(pageLayout)).Parse(`
{{define "title"}}已取消 Cancelled{{end}}
{{define "main"}}
<h2 id="cancelled">已取消 Cancelled</h2>
<p id="subject">{{.Subject}}</p>
<p class="muted">商户订单号 Order {{.OutTradeNo}}</p>
{{if eq .Product "app"}}<p>The buyer cancelled: the app SDK's result is resultStatus <b id="result-status">6001</b> 用户中途取消.</p>{{else}}<p>The buyer closed the cashier: the QR code may be scanned again.</p>{{end}}
<p class="muted">The trade stays <span id="status">{{.Status}}</span>.</p>
{{end}}`))

var tradeFuncs = template.FuncMap{
	// bj writes a time as Alipay does: Beijing time, yyyy-MM-dd HH:mm:ss.
	"bj": protocol.Timestamp,
}

// tradePagesLayout is the layout of the trade pages: wide, for tables,
// with a link to the list in the header.
var tradePagesLayout = template.Must(template.Must(template.New("trades").Funcs(tradeFuncs).Parse(pageLayout)).Parse(`
{{define "bodyclass"}}wide{{end}}
{{define "nav"}} <a href="/sandbox/trades" style="color:#fff;float:right;font-size:15px">交易 Trades</a>{{end}}`))

// tradeListTemplate is /sandbox/trades (a tradeListDoc).
var tradeListTemplate = template.Must(template.Must(tradePagesLayout.Clone()).Parse(`
{{define "title"}}交易 Trades{{end}}
{{define "main"}}
<h1>交易 Trades</h1>
<p class="muted" id="keeps">The sandbox keeps at most <b id="max-trades">{{.MaxTrades}}</b> trades in memory (max_trades), and drops the oldest first beyond that.
Kept now: <b id="kept">{{.Kept}}</b>; dropped so far: <b id="dropped">{{.Dropped}}</b>.
Newest first; times are Beijing time (UTC+8), as Alipay writes them. Also as JSON, with <code>Accept: application/json</code>.</p>
{{if .Trades}}
<div class="scroll"><table id="trades">
<thead><tr><th>Created 创建时间</th><th>out_trade_no</th><th>Subject 商品</th><th class="num">Amount 金额</th><th>Status 状态</th><th>Protocol</th><th>Product 产品</th><th>Notification 通知</th></tr></thead>
<tbody>
{{range .Trades}}<tr id="row-{{.TradeNo}}">
<td class="time">{{bj .CreatedAt}}</td>
<td><a href="/sandbox/trades/{{.OutTradeNo}}"><code>{{.OutTradeNo}}</code></a></td>
<td>{{.Subject}}</td>
<td class="num">¥{{.Amount}}</td>
<td>{{.Status}}{{if .AwaitingScan}}<br><span class="muted">QR code not scanned</span>{{end}}</td>
<td>{{if .Legacy}}legacy 即时到账{{else}}OpenAPI{{end}}</td>
<td>{{.ProductText}}</td>
<td><span class="{{.DeliveryClass}}">{{.DeliveryShort}}</span>{{if .AttemptsTotal}}<br><span class="muted">{{.AttemptsTotal}} attempt{{if gt .AttemptsTotal 1}}s{{end}}{{if gt .NoticeCount 1}}, {{.NoticeCount}} notifications{{end}}</span>{{end}}</td>
</tr>
{{end}}</tbody>
</table></div>
{{else}}
<p id="no-trades">No trades yet: the pay requests that reach /gateway.do appear here.</p>
{{end}}
{{end}}`))

// tradePageTemplate is /sandbox/trades/<out_trade_no> (a tradePageDoc).
var tradePageTemplate = template.Must(template.Must(tradePagesLayout.Clone()).Parse(`
{{define "title"}}交易 {{.OutTradeNo}}{{end}}
{{define "main"}}
<h1>交易 Trade <code>{{.OutTradeNo}}</code><a class="back" href="/sandbox/trades" id="all-trades">← 全部交易 All trades</a></h1>
{{if gt (len .Trades) 1}}<p class="muted">{{len .Trades}} trades have this out_trade_no (other apps, or an OpenAPI and a legacy one): newest first.</p>{{end}}
{{range .Trades}}{{$t := .}}
<section id="trade{{.Suffix}}">
<h2><span id="subject{{.Suffix}}">{{.Subject}}</span> · ¥<span id="amount{{.Suffix}}">{{.Amount}}</span></h2>
<table class="fields">
<tr><th>out_trade_no</th><td><code>{{.OutTradeNo}}</code></td><th>trade_no</th><td><code id="trade-no{{.Suffix}}">{{.TradeNo}}</code></td></tr>
<tr><th>status</th><td><b id="status{{.Suffix}}">{{.Status}}</b>{{if .AwaitingScan}} <span id="awaiting-scan{{.Suffix}}" class="muted">QR code not scanned yet: queries answer ACQ.TRADE_NOT_EXIST</span>{{end}}</td><th>protocol</th><td id="protocol{{.Suffix}}">{{if .Legacy}}legacy 即时到账 ({{.Method}}, {{.Charset}}){{else}}OpenAPI ({{.Method}}){{end}}</td></tr>
<tr><th>product</th><td colspan="3" id="product{{.Suffix}}">{{.ProductText}}</td></tr>
<tr>{{if .Legacy}}<th>partner</th><td><code>{{.Partner}}</code></td>{{else}}<th>app_id</th><td><code>{{.AppID}}</code></td>{{end}}<th>sign_type</th><td>{{.SignType}}</td></tr>
<tr><th>created</th><td>{{bj .CreatedAt}}</td><th>paid</th><td>{{if .Paid}}{{bj .PaidAt}}{{else}}—{{end}}</td></tr>
<tr><th>notify_url</th><td colspan="3">{{if .NotifyURL}}<code>{{.NotifyURL}}</code>{{else}}—{{end}}</td></tr>
<tr><th>return_url</th><td colspan="3">{{if .ReturnURL}}<code>{{.ReturnURL}}</code>{{else}}—{{end}}</td></tr>
<tr><th>refunded</th><td>¥<span id="refunded{{.Suffix}}">{{.Refunded}}</span></td><th>notifications</th><td>{{.NoticeCount}}</td></tr>
</table>
{{if .CanRefund}}<div class="actions">
<div class="action"><form method="post" action="/sandbox/trades/{{.OutTradeNo}}/refund"><input type="hidden" name="id" value="{{.ID}}"><button id="refund{{.Suffix}}" class="secondary" type="submit">Refund in full 全额退款 ¥{{.RefundAmount}}</button></form><span class="muted">{{if .Legacy}}As a legacy batch of one item would refund it: its batch_refund_notify goes to the trade's notify_url.{{else}}As alipay.trade.refund would refund it: the shop's queries then see it, and its notification goes out.{{end}}</span></div>
</div>{{end}}

<h3>退款 Refunds</h3>
{{if .Refunds}}
<div class="scroll"><table id="refunds{{.Suffix}}">
<thead><tr><th>Time 时间</th><th class="num">Amount 金额</th><th>out_request_no / batch_no</th><th>By</th><th>Reason 原因</th></tr></thead>
<tbody>
{{range .Refunds}}<tr class="refund">
<td class="time">{{bj .AtTime}}</td><td class="num">¥{{.Amount}}</td>
<td>{{if .BatchNo}}batch_no <code>{{.BatchNo}}</code>{{else}}<code>{{.OutRequestNo}}</code>{{end}}</td>
<td>{{.ByText}}</td><td>{{.Reason}}</td>
</tr>
{{end}}</tbody>
</table></div>
{{else}}
<p class="muted">None.</p>
{{end}}

<h3>异步通知 Notifications</h3>
{{if not .Notifications}}<p id="delivery{{.Suffix}}" class="{{.DeliveryClass}}">{{.Delivery}}</p>{{end}}
{{range .Notifications}}{{$n := .}}
<div class="note" id="notification{{.Tag}}{{$t.Suffix}}">
<h4>{{.Number}}. <code>{{.NotifyType}}</code> · {{.AboutText}}{{if .NotifyID}} · notify_id <code>{{.NotifyID}}</code>{{end}}</h4>
<p class="muted">To <code>{{.URL}}</code>, in {{.Charset}}, signed {{.SignType}}.</p>
<p id="delivery{{.Tag}}{{$t.Suffix}}" class="{{.DeliveryClass}}">{{.Delivery}}{{if .NextAttempt}} <span id="next-attempt{{.Tag}}{{$t.Suffix}}" class="muted">{{bj .NextAt}}</span>{{end}}</p>
<div class="actions"><div class="action"><form method="post" action="/sandbox/trades/{{$t.OutTradeNo}}/resend"><input type="hidden" name="id" value="{{$t.ID}}"><input type="hidden" name="notification" value="{{.ID}}"><button id="resend{{.Tag}}{{$t.Suffix}}" class="primary" type="submit">Send again 重新通知</button></form><span class="muted">{{.ResendNote}}</span></div></div>
<details><summary class="muted">Fields 字段 (each sending adds notify_time{{if not .NotifyID}}, a fresh notify_id{{end}}, sign_type and sign)</summary>
<table class="fields" id="fields{{.Tag}}{{$t.Suffix}}">{{range .FieldKeys}}<tr><th>{{.}}</th><td><code>{{index $n.Fields .}}</code></td></tr>{{end}}</table></details>
{{if .Attempts}}
{{if gt .AttemptsTotal (len .Attempts)}}<p class="muted">{{.AttemptsTotal}} attempts in all; the latest {{len .Attempts}} are kept.</p>{{end}}
<div class="scroll"><table id="attempts{{.Tag}}{{$t.Suffix}}">
<thead><tr><th>#</th><th>Sent 时间</th><th>URL</th><th>Status</th><th class="num">Took</th><th>Answer 应答</th><th>Result</th>{{if not $n.NotifyID}}<th>notify_id</th>{{end}}</tr></thead>
<tbody>
{{range .Attempts}}<tr class="attempt">
<td class="nowrap">{{.Number}}{{if .Resend}}<span class="tag">send again</span>{{end}}</td>
<td class="time">{{bj .AtTime}}</td>
<td><code>{{.URL}}</code></td>
<td>{{if .Status}}HTTP {{.Status}}{{else}}<span class="bad">{{.Error}}</span>{{end}}</td>
<td class="num">{{.DurationMS}} ms</td>
<td>{{if .Answer}}<code>{{.Answer}}</code>{{else if .Status}}<span class="muted">(empty)</span>{{end}}</td>
<td>{{if .Accepted}}<span class="ok">✓ accepted</span>{{else}}<span class="bad">✗ not accepted</span>{{end}}</td>
{{if not $n.NotifyID}}<td><code>{{.NotifyID}}</code></td>{{end}}
</tr>
{{end}}</tbody>
</table></div>
{{else}}
<p class="muted">No attempt yet.</p>
{{end}}
</div>
{{end}}
{{if .Notifications}}<p class="muted">An attempt counts only if the shop's answer is <code>success</code>; any other answer, or none, is sent again on the schedule (notify_retry).</p>{{end}}

<h3>同步返回与接口调用 Returns and API calls</h3>
{{if .Events}}
{{if gt .EventsTotal (len .Events)}}<p class="muted">{{.EventsTotal}} in all; the latest {{len .Events}} are kept.</p>{{end}}
<div class="scroll"><table id="events{{.Suffix}}">
<thead><tr><th>Time 时间</th><th>What</th><th>By</th><th>code</th><th>sub_code</th><th>Detail</th></tr></thead>
<tbody>
{{range .Events}}<tr class="event">
<td class="time">{{bj .AtTime}}</td><td><code>{{.Kind}}</code></td><td>{{.Source}}</td>
<td>{{.Code}}</td><td>{{.SubCode}}</td><td>{{.Detail}}</td>
</tr>
{{end}}</tbody>
</table></div>
{{else}}
<p class="muted">None: no return to the shop, and no call about this trade.</p>
{{end}}
</section>
{{end}}
{{end}}`))

// passwordPageTemplate is the legacy refund_fastpay_by_platform_pwd
// page, where the seller confirms a batch with a password (a
// passwordPageDoc), and the page after Confirm.
var passwordPageTemplate = template.Must(template.Must(template.New("password").Parse(pageLayout)).Parse(`
{{define "title"}}退款 Refund{{end}}
{{define "main"}}
{{if .Done}}
<h2 id="refund-result" class="ok">退款成功 Refunded</h2>
<p>{{if .Repeated}}This batch was refunded before: nothing more was refunded.{{else}}Every item is refunded; the shop gets batch_refund_notify.{{end}}</p>
{{else}}
<h2>退款确认 Confirm the refund</h2>
<p class="muted">The seller confirms this batch refund (refund_fastpay_by_platform_pwd) with the payment password.</p>
{{end}}
<p>批次号 batch_no <code id="batch-no">{{.BatchNo}}</code></p>
<table id="items"><thead><tr><th>trade_no</th><th class="num">Amount 金额</th><th>Reason 原因</th></tr></thead>
<tbody>{{range .Items}}<tr class="item"><td><code>{{.TradeNo}}</code></td><td class="num">¥{{.Amount}}</td><td>{{.Reason}}</td></tr>{{end}}</tbody></table>
<p>合计 Total ¥<span id="total">{{.Total}}</span></p>
{{if not .Done}}
{{if .Repeated}}<p class="muted" id="repeated">This batch was refunded before: Confirm refunds nothing more.</p>{{end}}
<form method="post" action="/sandbox/refund/{{.ID}}/confirm">
<p><label>支付密码 Payment password <input type="password" id="password" name="password" autocomplete="off"></label></p>
<button id="confirm" type="submit">Confirm 确认退款</button></form>
<p class="muted">This is a local sandbox: any password is taken, and no money moves.</p>
{{end}}
{{end}}`))

// renderPage writes a sandbox page; data is a tradeView, a tradeListDoc, a
// tradePageDoc, a passwordPageDoc, a *gatewayError or an appRefusal.
func renderPage(w http.ResponseWriter, status int, t *template.Template, data any) {
	switch ge := data.(type) {
	case *gatewayError:
		data = struct {
			Code, Reason string
			App          bool
		}{ge.code, ge.reason, false}
	case appRefusal:
		data = struct {
			Code, Reason string
			App          bool
		}{ge.code, ge.reason, true}
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

package sandbox

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// deliver POSTs the trade's notification until the answer is exactly
// success: at once, then after each wait of the retry schedule. It ends
// with the config that started it.
func (s *Sandbox) deliver(t *trade) {
	waits := append([]time.Duration{0}, s.retry...)
	for i, wait := range waits {
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		err := s.notifyOnce(t)
		if err == nil {
			s.logger.Info("sandbox: notification accepted", zap.String("out_trade_no", t.outTradeNo), zap.Int("attempt", i+1))
			return
		}
		s.logger.Warn("sandbox: notification not accepted", zap.String("out_trade_no", t.outTradeNo),
			zap.Int("attempt", i+1), zap.Error(err))
	}
}

func (s *Sandbox) notifyOnce(t *trade) error {
	var form string
	var err error
	charset := "utf-8"
	if t.legacy != nil {
		form, charset, err = s.legacyNotification(t, now())
	} else {
		form, err = s.notification(t, now())
	}
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, t.notifyURL, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset="+charset)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if strings.TrimSpace(string(body)) != "success" {
		return fmt.Errorf("answer %d %q", resp.StatusCode, body)
	}
	return nil
}

// notification is the form body of a trade_status_sync notification, with
// the fields Alipay sends, signed as Alipay signs it: sign_type and empty
// values left out of the string. It tells of the payment: a retry sent
// after a refund or a close still says TRADE_SUCCESS, as Alipay's does.
func (s *Sandbox) notification(t *trade, at time.Time) (string, error) {
	s.trades.mu.Lock()
	p := map[string]string{
		"notify_time": protocol.Timestamp(at), "notify_type": "trade_status_sync", "notify_id": t.notifyID,
		"app_id": t.appID, "auth_app_id": t.appID, "charset": "utf-8", "version": "1.0",
		"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo,
		"buyer_id": sandboxBuyerID, "buyer_logon_id": sandboxBuyerLogon,
		"seller_id": sandboxSellerID, "seller_email": sandboxSellerEmail,
		"trade_status": "TRADE_SUCCESS", "total_amount": t.amount.String(), "receipt_amount": t.amount.String(),
		"invoice_amount": t.amount.String(), "buyer_pay_amount": t.amount.String(), "point_amount": "0.00",
		"subject": t.subject, "body": t.body, "passback_params": t.passback,
		"gmt_create": protocol.Timestamp(t.created), "gmt_payment": protocol.Timestamp(t.paid),
		"fund_bill_list": `[{"amount":"` + t.amount.String() + `","fundChannel":"ALIPAYACCOUNT"}]`,
	}
	signType := t.signType
	s.trades.mu.Unlock()
	return s.signCallback(p, signType)
}

// returnQuery is the query Alipay's return carries: no trade_status.
func (s *Sandbox) returnQuery(t *trade) (string, error) {
	s.trades.mu.Lock()
	p := map[string]string{
		"charset": "utf-8", "out_trade_no": t.outTradeNo, "method": t.method + ".return",
		"total_amount": t.amount.String(), "trade_no": t.tradeNo, "auth_app_id": t.appID, "version": "1.0",
		"app_id": t.appID, "seller_id": sandboxSellerID, "timestamp": protocol.Timestamp(now()),
	}
	signType := t.signType
	s.trades.mu.Unlock()
	return s.signCallback(p, signType)
}

// signCallback signs p as Alipay signs callbacks (V1) and form-encodes it.
func (s *Sandbox) signCallback(p map[string]string, signType string) (string, error) {
	signer := s.signers[signType]
	sign, err := signer.Sign(protocol.RequestContent(p))
	if err != nil {
		return "", err
	}
	v := url.Values{}
	for k, val := range p {
		if val != "" {
			v.Set(k, val)
		}
	}
	v.Set("sign_type", signType)
	v.Set("sign", sign)
	return v.Encode(), nil
}

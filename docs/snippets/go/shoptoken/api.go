package shoptoken

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// AlipayAPI calls Alipay's OpenAPI through the sidecar at base ("https://shop.example.com").
// biz is the method's biz_content; the answer is the method's response (read its "code":
// "10000" is success). A refund, which a retry with the same out_request_no cannot repeat:
//
//	AlipayAPI("alipay.trade.refund", map[string]string{"out_trade_no": "T20240520001",
//		"refund_amount": "10.00", "out_request_no": "R1"}, secret, "https://shop.example.com")
func AlipayAPI(method string, biz any, secret, base string) (map[string]any, error) {
	body, err := json.Marshal(biz)
	if err != nil {
		return nil, err
	}
	claims, _ := json.Marshal(map[string]any{"scope": "api", "exp": time.Now().Add(5 * time.Minute).Unix()})
	token := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64.EncodeToString(claims)
	req, err := http.NewRequest("POST", base+"/alipay/api/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token+"."+mac(secret, token))
	// 90 s: a barcode payment lasts up to barcode_wait (60 s) and its cancels.
	resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		why := fmt.Sprint(out["error"])
		if out["code"] != nil {
			why += fmt.Sprintf(" (%v %v)", out["code"], out["msg"])
		}
		return nil, fmt.Errorf("alipay api %d: %s", resp.StatusCode, why)
	}
	return out, nil
}

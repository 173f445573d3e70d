package protocol

import (
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
)

func TestRequestParams(t *testing.T) {
	at := time.Date(2024, 5, 20, 5, 14, 15, 0, time.UTC) // 13:14:15 in Beijing
	api := &OpenAPI{AppID: testvec.AppID, Signer: testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2)}
	assert.Equal(t, map[string]string{
		"app_id": testvec.AppID, "method": "alipay.trade.page.pay", "format": "JSON", "charset": "utf-8",
		"sign_type": "RSA2", "timestamp": "2024-05-20 13:14:15", "version": "1.0", "biz_content": `{"a":"b"}`,
	}, api.RequestParams("alipay.trade.page.pay", []byte(`{"a":"b"}`), at))
	api.AppCertSN, api.RootCertSN = "app-sn", "root-sn"
	p := api.RequestParams("alipay.trade.query", nil, at)
	assert.Equal(t, "app-sn", p["app_cert_sn"])
	assert.Equal(t, "root-sn", p["alipay_root_cert_sn"])
}

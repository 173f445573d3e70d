package sandbox

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nodeSDKAppOrder is the app-pay case of testdata/facetoface_vectors.json:
// the order string that Alipay's Node.js SDK (sdkExecute) made, and the
// parameters in it.
func nodeSDKAppOrder(t *testing.T) (string, map[string]string) {
	t.Helper()
	var v struct {
		AppPay struct {
			OrderString string            `json:"order_string"`
			Params      map[string]string `json:"params_as_received_by_gateway"`
		} `json:"app_pay"`
	}
	require.NoError(t, json.Unmarshal(testvec.Read(t, "facetoface_vectors.json"), &v))
	require.NotEmpty(t, v.AppPay.OrderString)
	return v.AppPay.OrderString, v.AppPay.Params
}

// openAppPage asks the sandbox's app page for orderString, as the app
// SDK's stand-in does, following a redirect to the cashier if there is
// one, and returns the last answer.
func openAppPage(t *testing.T, sb *Handler, orderString string) *httptest.ResponseRecorder {
	t.Helper()
	rec := serve(t, sb, httptest.NewRequest("GET", "http://sandbox.test/sandbox/app?order_string="+url.QueryEscape(orderString), nil))
	if rec.Code == http.StatusFound || rec.Code == http.StatusSeeOther {
		loc := rec.Header().Get("Location")
		require.True(t, strings.HasPrefix(loc, "/sandbox/"), loc)
		rec = serve(t, sb, httptest.NewRequest("GET", "http://sandbox.test"+loc, nil))
	}
	return rec
}

// The sandbox's app page takes the SDK's own order string as it is (its
// key order, %20 for a space), and refuses what the app would refuse: a
// parameter added after signing, and an empty parameter.
func TestNodeSDKAppOrderString(t *testing.T) {
	orderString, params := nodeSDKAppOrder(t)
	var biz map[string]string
	require.NoError(t, json.Unmarshal([]byte(params["biz_content"]), &biz))
	// The vectors' notify_url is on shop.example.com. Opening a trade
	// sends nothing there; the sandbox only has to admit the host.
	sandbox := func(t *testing.T) *Handler {
		return newTestSandbox(t, func(h *Handler) { h.CallbackHosts = []string{"shop.example.com"} })
	}

	t.Run("accepted", func(t *testing.T) {
		sb := sandbox(t)
		rec := openAppPage(t, sb, orderString)
		page := rec.Body.String()
		require.Equal(t, http.StatusOK, rec.Code, page)
		assert.NotContains(t, page, `id="error-code"`)
		assert.Contains(t, page, `<p id="subject">`+html.EscapeString(biz["subject"])+`</p>`)
		assert.Contains(t, page, `<span id="amount">`+biz["total_amount"]+`</span>`)
		assert.Contains(t, page, `id="pay"`)
	})

	sign := strings.LastIndex(orderString, "&sign=")
	require.Positive(t, sign)
	for name, bad := range map[string]string{
		// A shop that adds a field to the signed string: not signed.
		"parameter after sign": orderString + "&return_url=" + url.QueryEscape("https://shop.example.com/alipay/return"),
		// Text glued to the end: sign's value is no longer the signature.
		"text after sign": orderString + "abc",
		// An empty parameter: the gateway signs it, the SDK did not.
		"empty parameter": orderString[:sign] + "&return_url=" + orderString[sign:],
	} {
		t.Run(name, func(t *testing.T) {
			sb := sandbox(t)
			rec := openAppPage(t, sb, bad)
			page := rec.Body.String()
			assert.Contains(t, page, `<b id="error-code">`)
			assert.NotContains(t, page, `id="pay"`)
		})
	}
}

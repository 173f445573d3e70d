package alipay

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/require"
)

// Fixed values of testdata/vectors.json, made with Alipay's Node.js SDK.
const (
	testAppID    = "2021000000000001"
	testSellerID = "2088000000000001"
	testSecret   = "0123456789abcdef0123456789abcdef-test-secret"
)

// vectors is the part of testdata/vectors.json that the tests read.
type vectors struct {
	PagePay  payVector `json:"page_pay"`
	WapPay   payVector `json:"wap_pay"`
	TradeQry struct {
		SignedParams map[string]string `json:"signed_params"`
		StringToSign string            `json:"string_to_sign"`
	} `json:"openapi_request_trade_query"`
	KeyFormats struct {
		Content string `json:"content"`
		Sign    string `json:"sign"`
	} `json:"key_formats"`
	Notify struct {
		Cases []notifyVector `json:"cases"`
	} `json:"notify"`
	Return struct {
		Params       map[string]string `json:"params"`
		StringToSign string            `json:"string_to_sign"`
		RedirectURL  string            `json:"redirect_url"`
	} `json:"return_url"`
}

type payVector struct {
	Method       string            `json:"method"`
	Params       map[string]string `json:"params_as_received_by_gateway"`
	StringToSign string            `json:"string_to_sign"`
	Sign         string            `json:"sign"`
	GetURL       string            `json:"get_url"`
}

type notifyVector struct {
	Name           string            `json:"name"`
	Charset        string            `json:"charset"`
	SignedWithType bool              `json:"signed_with_sign_type"`
	Params         map[string]string `json:"params"`
	StringToSign   string            `json:"string_to_sign"`
	PostBody       string            `json:"post_body"`
	ContentType    string            `json:"content_type"`
}

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	require.NoError(t, err)
	var v vectors
	require.NoError(t, json.Unmarshal(data, &v))
	require.NotEmpty(t, v.Notify.Cases)
	return &v
}

func keyPath(name string) string { return filepath.Join("testdata", "keys", name) }

func readTestFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(keyPath(name))
	require.NoError(t, err)
	return data
}

// newTestHandler returns a provisioned and validated handler with the
// vectors' keys; edit changes the config first.
func newTestHandler(t testing.TB, edit func(*Handler)) *Handler {
	t.Helper()
	h, err := provisionHandler(t, edit)
	require.NoError(t, err)
	return h
}

func provisionHandler(t testing.TB, edit func(*Handler)) (*Handler, error) {
	t.Helper()
	h := &Handler{
		AppID:           testAppID,
		AppPrivateKey:   keyPath("app_private_key_pkcs1.pem"),
		AlipayPublicKey: keyPath("alipay_public_key.pem"),
		Secret:          testSecret,
	}
	if edit != nil {
		edit(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		return nil, err
	}
	return h, h.Validate()
}

// fixClock sets the package clock to t for the test.
func fixClock(t testing.TB, at time.Time) {
	t.Helper()
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}

package protocol

import (
	"encoding/json"
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nodeSDKCase is one case of testdata/facetoface_vectors.json, made by
// Alipay's Node.js SDK (e2e/node/facetoface_vectors.js).
type nodeSDKCase struct {
	Method       string            `json:"method"`
	Params       map[string]string `json:"params_as_received_by_gateway"`
	StringToSign string            `json:"string_to_sign"`
	Sign         string            `json:"sign"`
	OrderString  string            `json:"order_string"` // app pay only
}

func loadFaceToFaceVectors(t *testing.T) map[string]nodeSDKCase {
	t.Helper()
	var v map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(testvec.Read(t, "facetoface_vectors.json"), &v))
	cases := map[string]nodeSDKCase{}
	for _, name := range []string{"app_pay", "precreate", "barcode_pay"} {
		var c nodeSDKCase
		require.NoError(t, json.Unmarshal(v[name], &c), name)
		require.NotEmpty(t, c.Sign, name)
		cases[name] = c
	}
	return cases
}

// The sidecar's signer gives, over the parameters that the SDK sent, the
// SDK's string to sign and its signature byte for byte; and the sidecar's
// own common parameters for the same call, timestamp and biz_content are
// the SDK's but for format=JSON, which the Node SDK does not send (both
// sign what they send, so either is valid).
func TestNodeSDKFaceToFaceSign(t *testing.T) {
	s := testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2)
	api := &OpenAPI{AppID: testvec.AppID, Signer: s}
	for name, c := range loadFaceToFaceVectors(t) {
		t.Run(name, func(t *testing.T) {
			params := maps.Clone(c.Params)
			assert.Equal(t, c.StringToSign, string(RequestContent(params)), "string to sign")
			require.NoError(t, SignParams(s, params))
			assert.Equal(t, c.Sign, params["sign"])

			ours := api.RequestParams(c.Method, []byte(c.Params["biz_content"]), clientNow)
			if u := c.Params["notify_url"]; u != "" {
				ours["notify_url"] = u
			}
			assert.Equal(t, "JSON", ours["format"])
			delete(ours, "format")
			sdk := maps.Clone(c.Params)
			delete(sdk, "sign")
			assert.Equal(t, sdk, ours)

			// The sidecar's own biz_content for the same fields: a precreate
			// order's is the SDK's byte for byte; BarcodeBiz sorts the keys
			// where the SDK keeps the caller's order, the same JSON object.
			var fields map[string]json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(c.Params["biz_content"]), &fields))
			switch name {
			case "precreate":
				fields["product"] = json.RawMessage(`"qr"`)
				o, err := parseOpenAPIOrder(fields)
				require.NoError(t, err)
				assert.Equal(t, c.Params["biz_content"], string(o.BizContent()))
			case "barcode_pay":
				biz, err := BarcodeBiz(fields)
				require.NoError(t, err)
				assert.JSONEq(t, c.Params["biz_content"], string(biz))
			}
		})
	}
}

// The sidecar's app order string for the SDK's order: the same
// biz_content bytes, no empty parameter, sign last, and a signature that
// the app's public key verifies over the sorted raw k=v of what it holds.
func TestAppOrderStringLikeNodeSDK(t *testing.T) {
	sdk := loadFaceToFaceVectors(t)["app_pay"]
	var biz map[string]string
	require.NoError(t, json.Unmarshal([]byte(sdk.Params["biz_content"]), &biz))
	claims := map[string]json.RawMessage{"product": json.RawMessage(`"app"`)}
	for _, k := range []string{"out_trade_no", "total_amount", "subject"} {
		claims[k], _ = json.Marshal(biz[k])
	}
	o, err := parseOpenAPIOrder(claims)
	require.NoError(t, err)
	assert.Equal(t, sdk.Params["biz_content"], string(o.BizContent()), "biz_content byte for byte")

	api := &OpenAPI{AppID: testvec.AppID, Signer: testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2)}
	s, err := api.AppOrderString(o, sdk.Params["notify_url"], clientNow)
	require.NoError(t, err)
	pairs := strings.Split(s, "&")
	assert.True(t, strings.HasPrefix(pairs[len(pairs)-1], "sign="), "sign is last: %s", s)
	params := map[string]string{}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, kv)
		v, err := url.QueryUnescape(v)
		require.NoError(t, err)
		require.NotEmpty(t, v, "empty parameter %s", k)
		params[k] = v
	}
	v := testVerifier(t, "app_public_key.pem", SignTypeRSA2)
	assert.NoError(t, v.Verify(RequestContent(params), params["sign"]))

	// The same order as the SDK's, format=JSON aside.
	assert.Equal(t, "JSON", params["format"])
	delete(params, "format")
	delete(params, "sign")
	want := maps.Clone(sdk.Params)
	delete(want, "sign")
	assert.Equal(t, want, params)
}

// The SDK's order string read as a gateway reads it: URL-decoded, every
// parameter but sign sorted as raw k=v, gives the SDK's string to sign,
// and its sign verifies over it. sign_type is part of that string (every
// SDK signs it in a request): leaving it out as well, as a notification's
// check does, gives a string that the signature does not verify.
func TestNodeSDKAppOrderStringParsed(t *testing.T) {
	sdk := loadFaceToFaceVectors(t)["app_pay"]
	q, err := url.ParseQuery(sdk.OrderString)
	require.NoError(t, err)
	params := map[string]string{}
	for k, vs := range q {
		require.Len(t, vs, 1, k)
		params[k] = vs[0]
	}
	assert.Equal(t, sdk.Params, params)
	assert.Equal(t, sdk.StringToSign, string(RequestContent(params)))
	v := testVerifier(t, "app_public_key.pem", SignTypeRSA2)
	assert.NoError(t, v.Verify(RequestContent(params), params["sign"]))

	delete(params, "sign_type")
	assert.ErrorIs(t, v.Verify(RequestContent(params), sdk.Sign), ErrBadSignature)
}

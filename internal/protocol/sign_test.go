package protocol

import (
	"maps"
	"net/url"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The signature must be byte for byte the one Alipay's Node.js SDK made
// for the same parameters (testdata/vectors.json).
func TestSignMatchesAlipaySDK(t *testing.T) {
	v := testvec.Load(t)
	s := testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2)
	for _, pv := range []testvec.Pay{v.PagePay, v.WapPay} {
		t.Run(pv.Method, func(t *testing.T) {
			params := maps.Clone(pv.Params)
			assert.Equal(t, pv.StringToSign, string(RequestContent(params)), "string to sign")
			require.NoError(t, SignParams(s, params))
			assert.Equal(t, pv.Sign, params["sign"])
			assert.Equal(t, pv.Params["sign"], params["sign"])

			// The GET URL carries the same parameters, however ordered.
			got, err := url.Parse(GatewayProduction + "?" + Encode(params))
			require.NoError(t, err)
			want, err := url.Parse(pv.GetURL)
			require.NoError(t, err)
			assert.Equal(t, want.Query(), got.Query())
			assert.Equal(t, "openapi.alipay.com", got.Host)
		})
	}
	t.Run("alipay.trade.query", func(t *testing.T) {
		params := maps.Clone(v.TradeQry.SignedParams)
		want := params["sign"]
		assert.Equal(t, v.TradeQry.StringToSign, string(RequestContent(params)))
		require.NoError(t, SignParams(s, params))
		assert.Equal(t, want, params["sign"])
	})
}

func TestRequestContentLeavesOutSignAndEmpty(t *testing.T) {
	got := RequestContent(map[string]string{"b": "2", "a": "1", "sign": "x", "empty": "", "sign_type": "RSA2", "A": "0"})
	assert.Equal(t, "A=0&a=1&b=2&sign_type=RSA2", string(got))
}

func TestSignTypeRSAUsesSHA1(t *testing.T) {
	s1 := testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA)
	s2 := testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2)
	a, err := s1.Sign([]byte("a=1"))
	require.NoError(t, err)
	b, err := s2.Sign([]byte("a=1"))
	require.NoError(t, err)
	assert.NotEqual(t, a, b)
	pub, err := ParsePublicKey(testvec.ReadKey(t, "app_public_key.pem"))
	require.NoError(t, err)
	v1, err := NewRSAVerifier(pub, SignTypeRSA)
	require.NoError(t, err)
	assert.NoError(t, v1.Verify([]byte("a=1"), a))
	assert.ErrorIs(t, v1.Verify([]byte("a=1"), b), ErrBadSignature)
	_, err = NewRSASigner(s1.key, "MD5")
	assert.Error(t, err)
}

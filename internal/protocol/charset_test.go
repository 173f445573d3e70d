package protocol

import (
	"encoding/hex"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// DecodeCharset gives the vectors' strings to sign back from their bytes,
// and refuses bytes that are not text in the charset.
func TestDecodeCharset(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		b, err := hex.DecodeString(c.HexToSign)
		require.NoError(t, err)
		got, err := DecodeCharset(b, c.Charset)
		require.NoError(t, err, c.Name)
		assert.Equal(t, c.StringToSign, got, c.Name)
		back, err := encodeCharset(got, c.Charset)
		require.NoError(t, err)
		assert.Equal(t, b, back, c.Name)
	}
	for _, bad := range []struct {
		b       string
		charset string
	}{
		{"\xff\xfe", "utf-8"}, {"a\xe4\xb8", "utf-8"},
		{"\xff", "gbk"}, {"\x81", "gbk"}, {"\x81\x20", "gbk"}, {"\x81\x7f", "gbk"}, {"a\xd6", "gbk"},
		{"abc", "latin1"}, {"\xe4\xb8\xad", "gb2312"},
	} {
		_, err := DecodeCharset([]byte(bad.b), bad.charset)
		assert.Error(t, err, "%q in %s", bad.b, bad.charset)
	}
	s, err := DecodeCharset([]byte("\xd6\xd0\xce\xc4 abc"), "gbk")
	require.NoError(t, err)
	assert.Equal(t, "中文 abc", s)
	s, err = DecodeCharset([]byte("plain"), "utf-8")
	require.NoError(t, err)
	assert.Equal(t, "plain", s)
}

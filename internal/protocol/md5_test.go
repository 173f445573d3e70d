package protocol

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An MD5 sign in upper case verifies; any other is refused in constant
// time. A key must be 32 letters and digits.
func TestMD5Key(t *testing.T) {
	k, err := NewMD5Key("testonlymd5keynotforproduction42")
	require.NoError(t, err)
	sign, err := k.Sign([]byte("a=1&b=2"))
	require.NoError(t, err)
	assert.Len(t, sign, 32)
	assert.NoError(t, k.Verify([]byte("a=1&b=2"), strings.ToUpper(sign)))
	assert.ErrorIs(t, k.Verify([]byte("a=1&b=3"), sign), ErrBadSignature)
	assert.ErrorIs(t, k.Verify([]byte("a=1&b=2"), sign[:31]), ErrBadSignature)
	for _, bad := range []string{"", "short", strings.Repeat("a", 31), strings.Repeat("a", 33), strings.Repeat("-", 32), strings.Repeat("中", 32)} {
		_, err := NewMD5Key(bad)
		assert.Error(t, err, bad)
	}
}

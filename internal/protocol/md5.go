package protocol

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
)

// SignTypeMD5 is the legacy protocol's MD5 sign type.
const SignTypeMD5 = "MD5"

// MD5Key is the partner's MD5 key: it signs and verifies the legacy
// protocol's MD5 sign, the lower-case hex MD5 of the string to sign
// followed directly by the key.
type MD5Key struct {
	key []byte
}

var md5KeyRE = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)

// NewMD5Key returns the key, which must be 32 letters and digits.
func NewMD5Key(key string) (*MD5Key, error) {
	if !md5KeyRE.MatchString(key) {
		return nil, errors.New("must be the partner's 32 letters and digits")
	}
	return &MD5Key{key: []byte(key)}, nil
}

// SignType implements Signer and Verifier.
func (*MD5Key) SignType() string { return SignTypeMD5 }

// Sign implements Signer.
func (k *MD5Key) Sign(content []byte) (string, error) {
	h := md5.New()
	h.Write(content)
	h.Write(k.key)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Verify implements Verifier, in constant time.
func (k *MD5Key) Verify(content []byte, sign string) error {
	want, _ := k.Sign(content)
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(sign))) != 1 {
		return ErrBadSignature
	}
	return nil
}

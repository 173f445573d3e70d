package protocol

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"strings"
)

// Content encryption (接口内容加密): with it switched on for the app in
// Alipay's console, every API call's biz_content and every answer travel
// encrypted with the app's AES key: AES-128-CBC with PKCS#7 padding and
// an IV of 16 zero bytes, as base64. The zero IV makes it deterministic;
// that is Alipay's scheme, and the signature over the ciphertext is what
// protects it.

// A ContentKey is an app's AES content-encryption key.
type ContentKey struct {
	block cipher.Block
}

// ErrContentKey is a key that is not the base64 of 16 bytes.
var ErrContentKey = errors.New("not an AES key: want the base64 of 16 bytes, as Alipay's console shows it")

// NewContentKey reads a key as Alipay's console shows it: the base64 of
// 16 bytes.
func NewContentKey(b64 string) (*ContentKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(raw) != 16 {
		return nil, ErrContentKey
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, ErrContentKey
	}
	return &ContentKey{block}, nil
}

var zeroIV = make([]byte, aes.BlockSize)

// Encrypt returns plain encrypted, as base64.
func (k *ContentKey) Encrypt(plain []byte) string {
	n := aes.BlockSize - len(plain)%aes.BlockSize
	buf := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(n)}, n)...)
	cipher.NewCBCEncrypter(k.block, zeroIV).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

// ErrDecrypt is a ciphertext that does not decrypt with the key.
var ErrDecrypt = errors.New("the content does not decrypt with encrypt_key")

// Decrypt returns the plaintext of the base64 ciphertext b64, checking its
// padding strictly.
func (k *ContentKey) Decrypt(b64 string) ([]byte, error) {
	buf, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(buf) == 0 || len(buf)%aes.BlockSize != 0 {
		return nil, ErrDecrypt
	}
	cipher.NewCBCDecrypter(k.block, zeroIV).CryptBlocks(buf, buf)
	n := int(buf[len(buf)-1])
	if n == 0 || n > aes.BlockSize || !bytes.Equal(buf[len(buf)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, ErrDecrypt
	}
	return buf[:len(buf)-n], nil
}

package protocol

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxKeyFileSize bounds what a key setting may read from disk: a 4096-bit
// PEM key is about 3.3 KiB, so this leaves room for comments and chains.
const maxKeyFileSize = 64 << 10

// errNotKey is material that is neither a PEM nor a base64-encoded RSA key.
var errNotKey = errors.New("not a PEM or base64-encoded RSA key")

// KeyMaterial returns the bytes of a key or certificate setting: the
// value itself when it is inline key material (PEM, or the bare base64
// that Alipay's key tool writes), otherwise the contents of the file it
// names. The value is never echoed in an error, so that a mistyped
// inline key does not end up in a log.
func KeyMaterial(value string) ([]byte, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, errors.New("empty (an unset environment variable or a missing {file.*}?)")
	}
	if strings.HasPrefix(v, "-----BEGIN") || looksLikeBase64Key(v) {
		return []byte(v), nil
	}
	// Anything longer than a sane path is mangled key material, which
	// must not reach an error message as a "file name".
	if len(v) > 256 || strings.ContainsAny(v, "\r\n") {
		return nil, errNotKey
	}
	data, err := readSecretFile(v, maxKeyFileSize)
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("the key file is larger than %d bytes", maxKeyFileSize)
	}
	return data, nil
}

// readSecretFile reads at most limit+1 bytes of the file that a secret
// setting names. Its errors never hold the name: a value that is not a
// file may be a mistyped key.
func readSecretFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("neither a key nor a file that can be read (%w)", pathless(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the key file: %w", pathless(err))
	}
	return data, nil
}

// pathless is err without the file name that an *fs.PathError carries.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// looksLikeBase64Key reports whether s is long enough and made only of the
// standard base64 alphabet (and white space) to be a bare DER key. The
// shortest key accepted, RSA-1024 public, is over 200 base64 characters;
// no sensible file name is.
func looksLikeBase64Key(s string) bool {
	if len(s) < 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '+', c == '/', c == '=', c == '\n', c == '\r', c == ' ', c == '\t':
		default:
			return false
		}
	}
	return true
}

// keyDER unwraps key material into DER bytes and the PEM block type ("" for
// bare base64).
func keyDER(material []byte) (der []byte, blockType string, err error) {
	material = bytes.TrimSpace(material)
	if bytes.HasPrefix(material, []byte("-----BEGIN")) {
		block, _ := pem.Decode(material)
		if block == nil {
			return nil, "", errors.New("malformed PEM")
		}
		if _, ok := block.Headers["DEK-Info"]; ok || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, "", errors.New("encrypted keys are not supported; decrypt it with openssl first")
		}
		return block.Bytes, block.Type, nil
	}
	clean := bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, material)
	der = make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(der, clean)
	if err != nil {
		return nil, "", errNotKey
	}
	return der[:n], "", nil
}

// ParsePrivateKey reads an RSA private key in any form Alipay users hold
// one: PEM (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY") or the bare
// base64 of either that Alipay's key tool writes.
func ParsePrivateKey(material []byte) (*rsa.PrivateKey, error) {
	der, blockType, err := keyDER(material)
	if err != nil {
		return nil, err
	}
	switch blockType {
	case "", "RSA PRIVATE KEY", "PRIVATE KEY":
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, errors.New("this is a public key or certificate, not the app's private key")
	default:
		return nil, fmt.Errorf("unexpected PEM block %q, want RSA PRIVATE KEY or PRIVATE KEY", blockType)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T private key, want RSA", k)
		}
		return rk, nil
	}
	if _, err := parsePublicDER(der); err == nil {
		return nil, errors.New("this is a public key, not the app's private key")
	}
	return nil, errNotKey
}

// ParsePublicKey reads an RSA public key: PEM (PKIX "PUBLIC KEY" or PKCS#1
// "RSA PUBLIC KEY") or the bare base64 that Alipay's console shows.
func ParsePublicKey(material []byte) (*rsa.PublicKey, error) {
	der, blockType, err := keyDER(material)
	if err != nil {
		return nil, err
	}
	switch blockType {
	case "", "PUBLIC KEY", "RSA PUBLIC KEY":
	case "RSA PRIVATE KEY", "PRIVATE KEY":
		return nil, errors.New("this is a private key; put Alipay's public key here")
	default:
		return nil, fmt.Errorf("unexpected PEM block %q, want PUBLIC KEY", blockType)
	}
	if k, err := parsePublicDER(der); err == nil {
		return k, nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return nil, errors.New("this is a private key; put Alipay's public key here")
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return nil, errors.New("this is a private key; put Alipay's public key here")
	}
	return nil, errNotKey
}

func parsePublicDER(der []byte) (*rsa.PublicKey, error) {
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T public key, want RSA", k)
		}
		return rk, nil
	}
	return x509.ParsePKCS1PublicKey(der)
}

// loadPrivateKey and loadPublicKey read the key of a setting; errors name
// it.
func loadPrivateKey(setting, value string) (*rsa.PrivateKey, error) {
	material, err := KeyMaterial(value)
	if err != nil {
		return nil, settingError(setting, err)
	}
	key, err := ParsePrivateKey(material)
	if err != nil {
		return nil, settingError(setting, err)
	}
	return key, nil
}

func loadPublicKey(setting, value string) (*rsa.PublicKey, error) {
	material, err := KeyMaterial(value)
	if err != nil {
		return nil, settingError(setting, err)
	}
	key, err := ParsePublicKey(material)
	if err != nil {
		return nil, settingError(setting, err)
	}
	return key, nil
}

// settingError names the setting that is wrong, as the Caddyfile and JSON
// spell it.
func settingError(setting string, err error) error {
	return fmt.Errorf("%s: %w", setting, err)
}

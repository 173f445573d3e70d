package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// The charset conversions. The legacy protocol signs, and Alipay sends,
// text in the partner's charset (utf-8 or gbk); OpenAPI callbacks name
// theirs (utf-8, gbk or gb18030). Signatures are always over the bytes as
// sent: conversion comes before signing a request, and after a callback
// verified.

// encodeCharset converts s from UTF-8 to charset (utf-8 or gbk).
func encodeCharset(s, charset string) ([]byte, error) {
	if charset == "utf-8" || isASCII([]byte(s)) {
		return []byte(s), nil
	}
	var enc *encoding.Encoder
	switch charset {
	case "gbk":
		enc = simplifiedchinese.GBK.NewEncoder()
	default:
		return nil, fmt.Errorf("unsupported charset %q", charset)
	}
	return enc.Bytes([]byte(s))
}

// DecodeCharset converts b, text in charset (utf-8 or gbk), to UTF-8,
// strictly: bytes that are not text in the charset, or that would not
// encode back to themselves, are an error. So what is shown from a value
// is what was signed, and encoding it again in the charset gives the same
// bytes.
func DecodeCharset(b []byte, charset string) (string, error) {
	switch {
	case charset != "utf-8" && charset != "gbk":
		return "", fmt.Errorf("unsupported charset %q", charset)
	case isASCII(b):
		return string(b), nil
	case charset == "utf-8":
		if !utf8.Valid(b) {
			return "", errors.New("not valid utf-8")
		}
		return string(b), nil
	}
	dec, err := simplifiedchinese.GBK.NewDecoder().Bytes(b)
	if err != nil {
		return "", errors.New("not valid gbk")
	}
	if back, err := encodeCharset(string(dec), charset); err != nil || !bytes.Equal(back, b) {
		return "", errors.New("not valid gbk")
	}
	return string(dec), nil
}

// toUTF8 converts b, a verified callback's value in charset (utf-8, gbk
// or gb18030, as Callback.charset names them), to UTF-8, leniently: the
// value is Alipay's, signed, and is passed on whatever its bytes, those
// that are not valid in the charset as U+FFFD.
func toUTF8(b []byte, charset string) string {
	if charset != "utf-8" && !isASCII(b) {
		var dec []byte
		var err error
		if charset == "gbk" {
			dec, err = simplifiedchinese.GBK.NewDecoder().Bytes(b)
		} else {
			dec, err = simplifiedchinese.GB18030.NewDecoder().Bytes(b)
		}
		if err == nil {
			b = dec
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
}

// isASCII reports whether b is ASCII, the same bytes in every charset
// here.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

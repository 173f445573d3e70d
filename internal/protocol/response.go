package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// An OpenAPI response: {"<method with _ for .>_response":{...},
// "alipay_cert_sn":"...","sign":"..."}, or "error_response" for a failure
// of the call itself. The signature covers the raw JSON text of the
// response value exactly as received, escapes such as \/ included.
type Response struct {
	// Raw is the *_response (or error_response) value, byte for byte.
	Raw json.RawMessage
	// Sign and CertSN are the body's sign and alipay_cert_sn ("" if absent).
	Sign, CertSN string
	// IsError is true when the body held error_response rather than the
	// method's response.
	IsError bool
}

// ErrResponse wraps every refusal of a response.
var ErrResponse = errors.New("unusable gateway response")

// ParseResponse reads the body of method's response. Like Alipay's Java
// SDK it refuses a top-level key given twice, so that the value verified
// is the one passed on.
func ParseResponse(body []byte, method string) (*Response, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%w: not a JSON object", ErrResponse)
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrResponse, err)
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrResponse, err)
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("%w: %q given twice", ErrResponse, key)
		}
		fields[key] = raw
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, fmt.Errorf("%w: trailing data", ErrResponse)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: trailing data", ErrResponse)
	}
	r := &Response{}
	key := strings.ReplaceAll(method, ".", "_") + "_response"
	if r.Raw = fields[key]; r.Raw == nil {
		if r.Raw = fields["error_response"]; r.Raw == nil {
			return nil, fmt.Errorf("%w: no %s", ErrResponse, key)
		}
		r.IsError = true
	}
	for name, dst := range map[string]*string{"sign": &r.Sign, "alipay_cert_sn": &r.CertSN} {
		if raw := fields[name]; raw != nil {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("%w: %s is not a string", ErrResponse, name)
			}
		}
	}
	return r, nil
}

// Verify checks the response's signature over its raw value. As the Java
// and PHP SDKs do, it tries once more with \/ written as /, for gateways
// that escaped the slash after signing.
func (r *Response) Verify(v Verifier) error {
	if r.Sign == "" {
		return fmt.Errorf("%w: unsigned", ErrResponse)
	}
	if v.Verify(r.Raw, r.Sign) == nil {
		return nil
	}
	if bytes.Contains(r.Raw, []byte(`\/`)) && v.Verify(bytes.ReplaceAll(r.Raw, []byte(`\/`), []byte("/")), r.Sign) == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrResponse, ErrBadSignature)
}

// SignedResponse is a response body as Alipay writes one: value (the
// method's response object, compact JSON) under its key, signed with s
// over its exact bytes, with certSN as alipay_cert_sn when it is set.
func SignedResponse(method string, value []byte, certSN string, s Signer) ([]byte, error) {
	sign, err := s.Sign(value)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"`)
	b.WriteString(strings.ReplaceAll(method, ".", "_"))
	b.WriteString(`_response":`)
	b.Write(value)
	if certSN != "" {
		b.WriteString(`,"alipay_cert_sn":"` + certSN + `"`)
	}
	b.WriteString(`,"sign":"` + sign + `"}`)
	return b.Bytes(), nil
}

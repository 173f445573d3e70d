// Package testvec is the fixed test data that the tests of every package
// share: testdata/vectors.json, made with Alipay's official Node.js SDK,
// the test keys and certificates it was made with, and the ids in it.
// Only tests import it.
package testvec

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// The ids and the secret that the vectors were made for.
const (
	AppID    = "2021000000000001"
	SellerID = "2088000000000001"
	Secret   = "0123456789abcdef0123456789abcdef-test-secret"
)

// root is the repository's root directory.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// Path is the absolute path of a file under testdata/.
func Path(elem ...string) string {
	return filepath.Join(append([]string{root, "testdata"}, elem...)...)
}

// Key is the absolute path of testdata/keys/name.
func Key(name string) string { return Path("keys", name) }

// Cert is the absolute path of testdata/certs/name.
func Cert(name string) string { return Path("certs", name) }

// Read returns the contents of a file under testdata/.
func Read(t testing.TB, elem ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(Path(elem...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ReadKey returns the contents of testdata/keys/name.
func ReadKey(t testing.TB, name string) []byte {
	t.Helper()
	return Read(t, "keys", name)
}

// Decode decodes testdata/vectors.json into v, for tests that read parts
// of it that Vectors does not hold.
func Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(Read(t, "vectors.json"), v); err != nil {
		t.Fatal(err)
	}
}

// Vectors is the part of testdata/vectors.json that most tests read.
type Vectors struct {
	PagePay  Pay `json:"page_pay"`
	WapPay   Pay `json:"wap_pay"`
	TradeQry struct {
		SignedParams map[string]string `json:"signed_params"`
		StringToSign string            `json:"string_to_sign"`
		PostURL      string            `json:"post_url"`
		PostBody     string            `json:"post_body"`
	} `json:"openapi_request_trade_query"`
	KeyFormats struct {
		Content string `json:"content"`
		Sign    string `json:"sign"`
	} `json:"key_formats"`
	Notify struct {
		Cases []Notify `json:"cases"`
	} `json:"notify"`
	Return struct {
		Params       map[string]string `json:"params"`
		StringToSign string            `json:"string_to_sign"`
		RedirectURL  string            `json:"redirect_url"`
	} `json:"return_url"`
	Responses struct {
		Cases []Response `json:"cases"`
	} `json:"responses"`
}

// Pay is a page or WAP pay request that the SDK signed.
type Pay struct {
	Method       string            `json:"method"`
	Params       map[string]string `json:"params_as_received_by_gateway"`
	StringToSign string            `json:"string_to_sign"`
	Sign         string            `json:"sign"`
	GetURL       string            `json:"get_url"`
}

// Notify is a notification as Alipay signs and sends it.
type Notify struct {
	Name           string            `json:"name"`
	Charset        string            `json:"charset"`
	SignedWithType bool              `json:"signed_with_sign_type"`
	Params         map[string]string `json:"params"`
	StringToSign   string            `json:"string_to_sign"`
	PostBody       string            `json:"post_body"`
	ContentType    string            `json:"content_type"`
}

// Response is an OpenAPI response body as Alipay signs it.
type Response struct {
	Method          string `json:"method"`
	RawBody         string `json:"raw_body"`
	SignedSubstring string `json:"signed_substring"`
	Sign            string `json:"sign"`
}

// Load reads testdata/vectors.json.
func Load(t testing.TB) *Vectors {
	t.Helper()
	var v Vectors
	Decode(t, &v)
	if len(v.Notify.Cases) == 0 || len(v.Responses.Cases) == 0 {
		t.Fatal("testdata/vectors.json: no notify or response cases")
	}
	return &v
}

// NewKeyFiles writes a fresh RSA key pair of bits to a temporary
// directory: the private key as PKCS#1 PEM, the public one as PKIX PEM.
func NewKeyFiles(t testing.TB, bits int) (privPath, pubPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	privPath, pubPath = filepath.Join(dir, "priv.pem"), filepath.Join(dir, "pub.pem")
	for path, block := range map[string]*pem.Block{
		privPath: {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		pubPath:  {Type: "PUBLIC KEY", Bytes: der},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return privPath, pubPath
}

// LegacyVectors is testdata/legacy/vectors.json: the legacy protocol's
// requests, notifications and returns, signed with MD5 and RSA in utf-8
// and gbk; the calls after a payment (queries, closes, refunds, their
// notifications); and the gateway's XML answers.
type LegacyVectors struct {
	MD5Key      string         `json:"md5_key"`
	Partner     string         `json:"partner"`
	SellerEmail string         `json:"seller_email"`
	Gateway     string         `json:"gateway"`
	Cases       []Legacy       `json:"cases"`
	Answers     []LegacyAnswer `json:"answers"`
}

// Legacy is one case of LegacyVectors.
type Legacy struct {
	Name string `json:"name"`
	// Kind: request (pay), api (a call of the shop's API), refund_url
	// (the seller's refund link), notify or return.
	Kind         string            `json:"kind"`
	Service      string            `json:"service"` // api and refund_url
	SignType     string            `json:"sign_type"`
	Charset      string            `json:"charset"`
	Key          string            `json:"key"`        // md5, or a key file under testdata/
	VerifyKey    string            `json:"verify_key"` // md5, or a key file under testdata/
	Params       map[string]string `json:"params"`     // UTF-8, without sign and sign_type
	StringToSign string            `json:"string_to_sign"`
	HexToSign    string            `json:"string_to_sign_hex"` // its bytes in the charset
	Sign         string            `json:"sign"`
	GatewayURL   string            `json:"gateway_url"` // request and refund_url
	PostURL      string            `json:"post_url"`    // api: the gateway URL with _input_charset
	PostBody     string            `json:"post_body"`   // notify and api
	ContentType  string            `json:"content_type"`
	Query        string            `json:"query"`     // returns
	ShopBody     json.RawMessage   `json:"shop_body"` // api: what the shop posts
	// TokenClaims are a refund_url's refund token claims.
	TokenClaims json.RawMessage `json:"token_claims"`
	// SiteNotifyURL is the site's notify URL, the refunds' default.
	SiteNotifyURL string `json:"site_notify_url"`
}

// A LegacyAnswer is one of the legacy gateway's XML answers, in File
// (under testdata/) in its declared Encoding, and JSON, its shop's view.
type LegacyAnswer struct {
	Name     string          `json:"name"`
	Service  string          `json:"service"`
	Encoding string          `json:"encoding"` // as declared; "" is none
	File     string          `json:"file"`
	JSON     json.RawMessage `json:"json"`
}

// LoadLegacy reads testdata/legacy/vectors.json.
func LoadLegacy(t testing.TB) *LegacyVectors {
	t.Helper()
	var v LegacyVectors
	if err := json.Unmarshal(Read(t, "legacy", "vectors.json"), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 || len(v.Answers) == 0 {
		t.Fatal("testdata/legacy/vectors.json: no cases or answers")
	}
	return &v
}

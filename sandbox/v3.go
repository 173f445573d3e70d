package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// OpenAPI v3, as Alipay's v3 gateway answers it, on the same site as
// /gateway.do: POST /v3/alipay/trade/query and the other methods that v2
// answers (protocol.V3Path). Only the envelope differs from v2; the
// trade store and the business logic are v2's (callAPI):
//
//   - the body is the biz_content as flat JSON, notify_url inside it;
//   - authorization: ALIPAY-SHA256withRSA app_id=…[,app_cert_sn=…],nonce=…,timestamp=<ms>,sign=…
//     verified with app_public_key over protocol.V3RequestContent (and the
//     alipay-app-auth-token header's value and "\n", when it is sent); the
//     timestamp must be within v3Window of the sandbox's clock and the
//     nonce new in that time; in certificate mode app_cert_sn and the
//     alipay-root-cert-sn header must name the sandbox's certificates;
//   - an answer is a flat JSON object without code and msg (200), or a
//     business failure {"code":<v2 sub_code>,"message":<v2 sub_msg>,"links":[]}
//     (400; 404 for ACQ.TRADE_NOT_EXIST; 500 for v2's 20000), both signed
//     with alipay_private_key in the headers alipay-timestamp,
//     alipay-nonce and alipay-signature (and alipay-sn in certificate
//     mode); a refusal of the request itself (401, 400, 404, 405, 413) is
//     the same shape, unsigned;
//   - with encrypt_key the request carries alipay-encrypt-type: AES and
//     the base64 ciphertext as its body (the signature covers the
//     ciphertext), and a 200 answer's body is the ciphertext, as text,
//     signed as it is sent. Errors stay plaintext JSON: Alipay's SDKs
//     parse every answer of status 400 and above as JSON.

const v3Prefix = "/v3/"

// v3Window is how far a request's timestamp may be from the sandbox's
// clock, either way. Alipay does not document its window; five minutes
// is the sandbox's choice.
const v3Window = 5 * time.Minute

// maxV3Nonces bounds the nonces remembered; beyond it the oldest is
// forgotten, before its time.
const maxV3Nonces = 50000

// maxV3NonceLen bounds a nonce, so that the set's memory is bounded too.
// The SDKs send a UUID.
const maxV3NonceLen = 128

// v3Methods is the v2 method of each v3 path.
var v3Methods = func() map[string]string {
	m := map[string]string{}
	for _, name := range slices.Concat(slices.Collect(maps.Keys(apiMethods)), slices.Collect(maps.Keys(openingMethods))) {
		m[protocol.V3Path(name)] = name
	}
	return m
}()

// v3Nonces are the nonces of the signed requests of the last two
// windows, in arrival order, so that a request replayed within its
// timestamp's window is refused.
type v3Nonces struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	order []v3Nonce
}

type v3Nonce struct {
	nonce string
	at    time.Time
}

// add records nonce at at and reports whether it was new. Nonces older
// than two windows are forgotten: a request that old is refused by its
// timestamp already.
func (n *v3Nonces) add(nonce string, at time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = map[string]time.Time{}
	}
	for len(n.order) > 0 && (len(n.order) >= maxV3Nonces || at.Sub(n.order[0].at) > 2*v3Window) {
		delete(n.seen, n.order[0].nonce)
		n.order = n.order[1:]
	}
	if _, dup := n.seen[nonce]; dup {
		return false
	}
	n.seen[nonce] = at
	n.order = append(n.order, v3Nonce{nonce, at})
	return true
}

// A v3Error is an answer in v3's error shape.
type v3Error struct {
	status        int
	code, message string
}

func (e *v3Error) body() []byte {
	code, _ := protocol.MarshalJSON(e.code)
	msg, _ := protocol.MarshalJSON(e.message)
	return []byte(`{"code":` + string(code) + `,"message":` + string(msg) + `,"links":[]}`)
}

func v3Refused(status int, code, message string) *v3Error {
	return &v3Error{status, code, message}
}

// serveV3 answers an OpenAPI v3 call.
func (h *Handler) serveV3(w http.ResponseWriter, r *http.Request) {
	traceID := randomHex(16)
	w.Header().Set("alipay-trace-id", traceID)
	method, ok := v3Methods[r.URL.Path]
	if !ok || !h.openAPI {
		reason := "the sandbox answers POST " + strings.Join(slices.Sorted(maps.Keys(v3Methods)), ", ")
		if !h.openAPI {
			reason = "the sandbox plays only the legacy gateway (partner and md5_key, without app_public_key and alipay_private_key)"
		}
		h.writeV3Refusal(w, method, v3Refused(http.StatusNotFound, "isv.invalid-method", "不存在的方法名: "+reason))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.writeV3Refusal(w, method, v3Refused(http.StatusMethodNotAllowed, "isv.invalid-http-method", "use POST"))
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxCallbackSize))
	if err != nil {
		h.writeV3Refusal(w, method, v3Refused(http.StatusRequestEntityTooLarge, "isv.invalid-parameter", "request body too large"))
		return
	}
	appID, refusal := h.checkV3Request(r, string(raw))
	if refusal == nil {
		var content string
		content, refusal = h.v3Content(r, string(raw))
		if refusal == nil {
			h.answerV3(w, r, method, appID, content)
			return
		}
	}
	h.writeV3Refusal(w, method, refusal)
}

// checkV3Request checks a call's authorization, as the gateway does
// before it reads the body, and returns its app_id.
func (h *Handler) checkV3Request(r *http.Request, body string) (string, *v3Error) {
	header := r.Header.Get("authorization")
	if header == "" {
		return "", v3Refused(http.StatusUnauthorized, "invalid-auth", "缺少 authorization 请求头: send authorization: ALIPAY-SHA256withRSA app_id=…,nonce=…,timestamp=…,sign=…")
	}
	authString, pairs, sign, err := protocol.ParseV3Authorization(header)
	if err != nil {
		return "", v3Refused(http.StatusUnauthorized, "invalid-auth", "authorization 格式错误: want ALIPAY-SHA256withRSA and k=v pairs joined by commas, sign last")
	}
	appID, nonce := pairs["app_id"], pairs["nonce"]
	switch {
	case appID == "":
		return "", v3Refused(http.StatusUnauthorized, "invalid-auth", "authorization 缺少 app_id")
	case nonce == "" || len(nonce) > maxV3NonceLen:
		return "", v3Refused(http.StatusUnauthorized, "invalid-auth", "authorization 缺少 nonce, or it is longer than "+strconv.Itoa(maxV3NonceLen)+" bytes")
	}
	ms, err := strconv.ParseInt(pairs["timestamp"], 10, 64)
	if err != nil {
		return "", v3Refused(http.StatusUnauthorized, "invalid-auth", "authorization 缺少 timestamp, in milliseconds since 1970")
	}
	if h.certs != nil {
		ge := h.certs.check(map[string]string{"app_cert_sn": pairs["app_cert_sn"], "alipay_root_cert_sn": r.Header.Get("alipay-root-cert-sn")})
		if ge != nil {
			reason := strings.ReplaceAll(ge.reason, "alipay_root_cert_sn", "the alipay-root-cert-sn header")
			return "", v3Refused(http.StatusUnauthorized, ge.code, reason)
		}
	}
	content := protocol.V3RequestContent(authString, r.Method, r.URL.RequestURI(), body)
	if token := r.Header.Get("alipay-app-auth-token"); token != "" {
		content = append(content, token+"\n"...)
	}
	if h.verifiers[protocol.SignTypeRSA2].Verify(content, sign) != nil {
		return "", v3Refused(http.StatusUnauthorized, "invalid-signature",
			"验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："+string(content))
	}
	at := now()
	if d := at.Sub(time.UnixMilli(ms)); d > v3Window || d < -v3Window {
		return "", v3Refused(http.StatusUnauthorized, "invalid-timestamp",
			"timestamp 与网关时间相差过大: the sandbox accepts "+v3Window.String()+" either way of its clock, "+strconv.FormatInt(at.UnixMilli(), 10))
	}
	if !h.v3Nonces.add(nonce, at) {
		return "", v3Refused(http.StatusUnauthorized, "invalid-nonce", "nonce 重复: a request's nonce must be new; this one was sent within the last "+(2*v3Window).String())
	}
	return appID, nil
}

// v3Content returns the body in plaintext, decrypted when content
// encryption is on. It runs after the signature was verified. The
// sub_codes are v2's, from Alipay's published table of common errors.
func (h *Handler) v3Content(r *http.Request, body string) (string, *v3Error) {
	encryptType := r.Header.Get("alipay-encrypt-type")
	switch {
	case encryptType == "" && h.contentKey == nil:
		return body, nil
	case encryptType == "":
		return "", v3Refused(http.StatusBadRequest, "isv.decryption-error-missing-encrypt-type",
			"解密出错, 未指定加密算法: the app has content encryption on (encrypt_key); send alipay-encrypt-type: AES, content-type: text/plain and the body encrypted")
	case !strings.EqualFold(encryptType, encryptTypeAES):
		return "", v3Refused(http.StatusBadRequest, "isv.decryption-error-not-valid-encrypt-type",
			"解密出错, 不支持的加密算法: alipay-encrypt-type must be AES")
	case h.contentKey == nil:
		return "", v3Refused(http.StatusBadRequest, "isv.decryption-error-not-valid-encrypt-key",
			"解密出错, 未配置加密密钥: the app has no AES key (the sandbox has no encrypt_key); send the body in plaintext, without alipay-encrypt-type")
	}
	plain, err := h.contentKey.Decrypt(strings.TrimSpace(body))
	if err != nil {
		return "", v3Refused(http.StatusBadRequest, "isv.decryption-error-unknown",
			"解密出错: the body does not decrypt with the app's AES key (encrypt_key): AES-128-CBC, PKCS#7 padding, zero IV, base64")
	}
	return string(plain), nil
}

// answerV3 runs a checked call through v2's business logic and writes
// its answer in v3's envelope.
func (h *Handler) answerV3(w http.ResponseWriter, r *http.Request, method, appID, content string) {
	biz, ok := decodeBiz(content)
	var f apiFields
	switch notifyURL, isString := biz["notify_url"].(string); {
	case !ok:
		f = invalidParameter("the body is not a JSON object")
	case biz["notify_url"] != nil && !isString:
		f = invalidParameter("notify_url must be a string")
	default:
		// The v2 common parameters that the business logic reads.
		p := map[string]string{"app_id": appID, "method": method, "sign_type": protocol.SignTypeRSA2, "notify_url": notifyURL}
		f = h.callAPI(method, p, biz, baseURL(r))
	}
	h.logger.Info("sandbox: api v3 call", zap.String("method", method), zap.String("out_trade_no", biz.str("out_trade_no")),
		zap.String("trade_no", biz.str("trade_no")), zap.Any("code", f["code"]), zap.Any("sub_code", f["sub_code"]))
	status, body, err := v3Answer(f)
	contentType := "application/json;charset=utf-8"
	if err == nil && status == http.StatusOK && h.contentKey != nil {
		body, contentType = []byte(h.contentKey.Encrypt(body)), "text/plain;charset=utf-8"
	}
	if err == nil {
		err = h.writeV3Signed(w, status, contentType, body)
	}
	if err != nil {
		h.logger.Error("sandbox: api v3 response", zap.Error(err))
		h.writeV3Refusal(w, method, v3Refused(http.StatusInternalServerError, "isp.unknow-error", "系统繁忙"))
	}
}

// v3Answer is a v2 answer in v3's shape: 10000 a 200 of the fields
// without code and msg; 10003 (a barcode payment waiting for the buyer,
// which v3 has no code for) a 200 of all the v2 fields, code, msg,
// sub_code and sub_msg included; 20000 a 500 and a business failure
// (40004) a 400, 404 for ACQ.TRADE_NOT_EXIST, as {"code":<sub_code>,
// "message":<sub_msg>,"links":[]}.
func v3Answer(f apiFields) (int, []byte, error) {
	switch f["code"] {
	case "10000":
		ok := maps.Clone(f)
		delete(ok, "code")
		delete(ok, "msg")
		body, err := ok.marshal()
		return http.StatusOK, body, err
	case "10003":
		body, err := f.marshal()
		return http.StatusOK, body, err
	}
	subCode, _ := f["sub_code"].(string)
	subMsg, _ := f["sub_msg"].(string)
	e := &v3Error{http.StatusBadRequest, subCode, subMsg}
	switch {
	case f["code"] == "20000":
		e.status = http.StatusInternalServerError
	case subCode == "ACQ.TRADE_NOT_EXIST":
		e.status = http.StatusNotFound
	case subCode == "":
		return 0, nil, fmt.Errorf("an answer of code %v without sub_code", f["code"])
	}
	return e.status, e.body(), nil
}

// writeV3Signed writes an answer signed as Alipay's v3 gateway signs
// one: alipay_private_key's SHA256withRSA over protocol.V3ResponseContent
// of the exact body, in alipay-timestamp, alipay-nonce and
// alipay-signature, with alipay-sn in certificate mode.
func (h *Handler) writeV3Signed(w http.ResponseWriter, status int, contentType string, body []byte) error {
	ts, nonce := strconv.FormatInt(now().UnixMilli(), 10), randomHex(16)
	sign, err := h.signers[protocol.SignTypeRSA2].Sign(protocol.V3ResponseContent(ts, nonce, body))
	if err != nil {
		return err
	}
	w.Header().Set("alipay-timestamp", ts)
	w.Header().Set("alipay-nonce", nonce)
	w.Header().Set("alipay-signature", sign)
	if h.certs != nil {
		w.Header().Set("alipay-sn", h.certs.alipayCertSN)
	}
	writeV3Body(w, status, contentType, body)
	return nil
}

// writeV3Refusal writes an unsigned, plaintext refusal of a request.
func (h *Handler) writeV3Refusal(w http.ResponseWriter, method string, e *v3Error) {
	h.logger.Warn("sandbox: api v3 request refused", zap.String("method", method),
		zap.Int("status", e.status), zap.String("code", e.code), zap.String("message", e.message))
	writeV3Body(w, e.status, "application/json;charset=utf-8", e.body())
}

func writeV3Body(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

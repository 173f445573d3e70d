package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The soak shop: the upstream of TestSoak's Caddy, in the test process. It
// checks X-Alipay-Token as a shop must, keeps a ledger of every notification
// it answered, and misbehaves on demand.

// soakMode is how the shop answers a notification.
type soakMode int32

const (
	soakOK      soakMode = iota // an acknowledgement at once (soakAcks, in turn)
	soakFail                    // 500 at once
	soakHang                    // no answer until the request is given up
	soakSlow                    // an acknowledgement after 1 to 2.5 s
	soakReset                   // the connection cut mid-answer
	soakUnacked                 // a 2xx that does not acknowledge (soakNoAcks, in turn)
)

func (m soakMode) String() string {
	return [...]string{"ok", "500", "hang", "slow", "reset", "unacked"}[m]
}

// A soakAnswer is a complete answer of the shop. In body, {id} is the
// notification's id; ack is the X-Alipay-Ack header ("" none, "jti" the
// notification's own id).
type soakAnswer struct {
	kind   string
	status int
	ack    string
	body   string
	acked  bool // an acknowledgement, as the README defines it (notify_ack success)
}

// soakAcks are the ways the shop acknowledges a notification: the body
// success (as a shop answers Alipay itself; whitespace and a BOM around it
// do not matter), or X-Alipay-Ack with the token's jti, whatever the body.
var soakAcks = []soakAnswer{
	{kind: "200 success", status: http.StatusOK, body: "success", acked: true},
	{kind: "200 page, X-Alipay-Ack", status: http.StatusOK, ack: "jti", body: "<p>order {id} saved</p>\n", acked: true},
	{kind: "204, X-Alipay-Ack", status: http.StatusNoContent, ack: "jti", acked: true},
	{kind: "200 BOM success CRLF", status: http.StatusOK, body: "\uFEFFsuccess\r\n", acked: true},
}

// soakNoAcks are 2xx answers that acknowledge nothing: what a catch-all
// site, a misrouted request or a shop of the old rule answers.
var soakNoAcks = []soakAnswer{
	{kind: "200 empty", status: http.StatusOK},
	{kind: "200 ok", status: http.StatusOK, body: "ok\n"}, // the demo shops' answer before the rule
	{kind: "200 html page", status: http.StatusOK, body: "<!doctype html><title>Shop</title><div id=app></div>\n"},
	{kind: "200 Success", status: http.StatusOK, body: "Success"}, // not exactly lower case
	{kind: "200, X-Alipay-Ack of another", status: http.StatusOK, ack: "another", body: "order saved\n"},
}

// soakHangMax bounds a hanging answer: longer than any client's timeout.
const soakHangMax = 40 * time.Second

// A soakEntry is one answer of the shop to a notification. Status is the
// HTTP status that went out complete (headers and body written and
// flushed), or 0 when no complete answer went out: a hang, a cut
// connection (even one cut after a "200" status line and "success": the
// shop's answer never finished), a request given up while the shop was
// slow. Acked says that the complete answer acknowledged the notification
// (a soakAcks answer).
type soakEntry struct {
	Status   int
	Acked    bool
	Kind     string // what the shop did: "200 success", "500", "slow 204, X-Alipay-Ack", "200 empty", "hung", "cut: ...", "bad token: ..."
	Path     string
	Received time.Time // when the request came in
	At       time.Time // when the shop was done with it
}

// soakShop is the shop. sent tells it the parameters that "Alipay" sent
// for a notify_id, so that it can check the token's params against them.
type soakShop struct {
	addr   string // 127.0.0.1:<port>, the same across restarts
	secret string
	sent   func(notifyID string) (params map[string]string, forged, ok bool)

	mode     atomic.Int32
	cutSeq   atomic.Int64
	ackSeq   atomic.Int64  // turns through soakAcks and soakNoAcks
	closing  chan struct{} // closed by close: ends hanging and slow answers
	closeOne sync.Once

	mu       sync.Mutex
	srv      *http.Server // nil while down
	ledger   map[string][]soakEntry
	problems []string // bad tokens, unknown or forged notifications: each fails the test
}

func newSoakShop(addr, secret string, sent func(string) (map[string]string, bool, bool)) *soakShop {
	return &soakShop{addr: addr, secret: secret, sent: sent, closing: make(chan struct{}),
		ledger: map[string][]soakEntry{}}
}

func (s *soakShop) setMode(m soakMode) { s.mode.Store(int32(m)) }

// up listens on the shop's port again (retrying for a few seconds, should
// the port still be held) and serves.
func (s *soakShop) up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", s.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("shop: listening on %s again: %w", s.addr, err)
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go s.srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed
	return nil
}

// down closes the listener and every connection: the shop is gone.
func (s *soakShop) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// close ends the shop for good, hanging answers included.
func (s *soakShop) close() {
	s.closeOne.Do(func() { close(s.closing) })
	s.down()
}

func (s *soakShop) record(r *http.Request, id string, e soakEntry) {
	e.At, e.Path = time.Now(), r.URL.Path
	e.Received, _ = r.Context().Value(soakReceivedKey{}).(time.Time)
	s.mu.Lock()
	s.ledger[id] = append(s.ledger[id], e)
	s.mu.Unlock()
}

func (s *soakShop) problem(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// snapshot copies the ledger and the problems.
func (s *soakShop) snapshot() (map[string][]soakEntry, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make(map[string][]soakEntry, len(s.ledger))
	for id, e := range s.ledger {
		l[id] = append([]soakEntry(nil), e...)
	}
	return l, append([]string(nil), s.problems...)
}

type soakReceivedKey struct{}

func (s *soakShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(context.WithValue(r.Context(), soakReceivedKey{}, time.Now()))
	if r.Method != http.MethodPost || (r.URL.Path != "/alipay/notify" && r.URL.Path != "/shop/notify") {
		// Health checks and anything else: not a notification.
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "shop ok\n")
		return
	}
	// Read the whole body first: only then does net/http notice that the
	// client (Caddy) went away and cancel r.Context().
	if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20)); err != nil {
		panic(http.ErrAbortHandler)
	}
	claims, err := soakVerifyToken(r.Header.Get("X-Alipay-Token"), s.secret, appID, time.Now())
	if err != nil {
		id := "?"
		if claims != nil {
			id = claims.Jti
		}
		s.problem("shop: notification %s on %s: bad X-Alipay-Token: %v", id, r.URL.Path, err)
		s.record(r, id, soakEntry{Status: http.StatusUnauthorized, Kind: "bad token: " + err.Error()})
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	// A good token whose content is not what Alipay sent fails the test,
	// but the shop answers as it would: the figures stay about the faults.
	if err := s.checkClaims(claims); err != nil {
		s.problem("shop: notification %s on %s: %v", claims.Jti, r.URL.Path, err)
	}
	id := claims.Jti
	switch soakMode(s.mode.Load()) {
	case soakOK:
		s.answer(w, r, id, s.next(soakAcks), "")
	case soakFail:
		s.answer(w, r, id, soakAnswer{kind: "500", status: http.StatusInternalServerError, body: "order {id}: 500\n"}, "")
	case soakUnacked:
		s.answer(w, r, id, s.next(soakNoAcks), "")
	case soakSlow:
		d := time.Second + rand.N(1500*time.Millisecond)
		if !s.wait(r.Context(), d) {
			s.record(r, id, soakEntry{Kind: "given up while slow"})
			panic(http.ErrAbortHandler)
		}
		s.answer(w, r, id, s.next(soakAcks), "slow ")
	case soakHang:
		s.wait(r.Context(), soakHangMax)
		s.record(r, id, soakEntry{Kind: "hung"})
		// Never the implicit 200 of a handler that returns.
		panic(http.ErrAbortHandler)
	case soakReset:
		s.cut(w, r, id)
	}
}

// wait sleeps for d; false if the request or the shop ended first.
func (s *soakShop) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}

// next is the next of the answers, in turn.
func (s *soakShop) next(answers []soakAnswer) soakAnswer {
	return answers[int(s.ackSeq.Add(1))%len(answers)]
}

// answer writes a complete answer, then records it.
func (s *soakShop) answer(w http.ResponseWriter, r *http.Request, id string, a soakAnswer, prefix string) {
	kind := prefix + a.kind
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch a.ack {
	case "":
	case "jti":
		w.Header().Set("X-Alipay-Ack", id)
	default:
		w.Header().Set("X-Alipay-Ack", a.ack+"-"+id)
	}
	w.WriteHeader(a.status)
	var err error
	if a.body != "" {
		_, err = io.WriteString(w, strings.ReplaceAll(a.body, "{id}", id))
	}
	if err == nil {
		err = http.NewResponseController(w).Flush()
	}
	if err != nil {
		s.record(r, id, soakEntry{Kind: kind + ", not delivered: " + err.Error()})
		return
	}
	s.record(r, id, soakEntry{Status: a.status, Acked: a.acked, Kind: kind})
}

// cut breaks the connection mid-answer, in turn: a reset before any
// status line; "200 OK" with X-Alipay-Ack and the first bytes of a body
// that begins with success, then FIN; the same, then a reset. None is a
// complete answer, so none is recorded as 2xx or as an acknowledgement.
func (s *soakShop) cut(w http.ResponseWriter, r *http.Request, id string) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.record(r, id, soakEntry{Kind: "cut: hijack: " + err.Error()})
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Alipay-Ack: " + id + "\r\nContent-Length: 64\r\n\r\nsuccess"
	rst := func() {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	kind := ""
	switch s.cutSeq.Add(1) % 3 {
	case 0:
		kind = "cut: reset before the status line"
		rst()
	case 1:
		kind = "cut: 200 head and part of the body, then FIN"
		_, _ = buf.WriteString(head)
		_ = buf.Flush()
	case 2:
		kind = "cut: 200 head and part of the body, then reset"
		_, _ = buf.WriteString(head)
		_ = buf.Flush()
		time.Sleep(20 * time.Millisecond) // let the bytes arrive before the RST
		rst()
	}
	s.record(r, id, soakEntry{Kind: kind})
}

// checkClaims compares a verified token's claims with what Alipay sent.
func (s *soakShop) checkClaims(c *soakClaims) error {
	if c.Event != "notify" {
		return fmt.Errorf("event %q", c.Event)
	}
	want, forged, ok := s.sent(c.Jti)
	switch {
	case !ok:
		return fmt.Errorf("jti %q was never sent", c.Jti)
	case forged:
		return fmt.Errorf("jti %q is a FORGED notification and reached the shop", c.Jti)
	case c.Params["notify_id"] != c.Jti:
		return fmt.Errorf("jti %q but params.notify_id %q", c.Jti, c.Params["notify_id"])
	case !maps.Equal(c.Params, want):
		return fmt.Errorf("params differ from what Alipay sent (empty values are not signed, so must not be passed on): %s",
			soakDiff(c.Params, want))
	}
	return nil
}

// soakDiff names the keys on which got and want differ.
func soakDiff(got, want map[string]string) string {
	var d []string
	for k, v := range got {
		if w, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s=%q not sent signed", k, v))
		} else if w != v {
			d = append(d, fmt.Sprintf("%s=%q, sent %q", k, v, w))
		}
	}
	for k, w := range want {
		if _, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("%s missing (sent %q)", k, w))
		}
	}
	slices.Sort(d)
	return strings.Join(d, "; ")
}

// soakClaims are an X-Alipay-Token's claims (README, "Receive the result").
type soakClaims struct {
	Iss    string            `json:"iss"`
	Aud    string            `json:"aud"`
	Iat    int64             `json:"iat"`
	Exp    int64             `json:"exp"`
	Jti    string            `json:"jti"`
	Event  string            `json:"event"`
	Params map[string]string `json:"params"`
}

// soakVerifyToken checks a token as the README tells a shop to: the HMAC
// in constant time, alg pinned to HS256, iss, aud, and exp with 60 s of
// leeway. The claims come back with an error too, once they could be read.
func soakVerifyToken(token, secret, app string, now time.Time) (*soakClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("no token, or not a JWT")
	}
	b64 := base64.RawURLEncoding
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal([]byte(b64.EncodeToString(m.Sum(nil))), []byte(parts[2])) {
		return nil, errors.New("bad signature")
	}
	var head struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	hj, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hj, &head) != nil || head.Alg != "HS256" || head.Typ != "JWT" {
		return nil, fmt.Errorf("header %s is not HS256 JWT", hj)
	}
	var c soakClaims
	cj, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cj, &c); err != nil {
		return nil, fmt.Errorf("claims (params must be strings): %w", err)
	}
	switch {
	case c.Iss != "caddy-alipay":
		return &c, fmt.Errorf("iss %q", c.Iss)
	case c.Aud != app:
		return &c, fmt.Errorf("aud %q", c.Aud)
	case now.Unix() >= c.Exp+60:
		return &c, fmt.Errorf("expired: exp %d", c.Exp)
	case c.Iat > now.Unix()+60 || c.Exp <= c.Iat:
		return &c, fmt.Errorf("iat %d, exp %d", c.Iat, c.Exp)
	}
	return &c, nil
}

// soakErrClass names why a request got no answer.
func soakErrClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "error"
}

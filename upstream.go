package alipay

// The reverse-proxy plumbing of a callback: how the upstream is served a
// verified callback and how its answer is taken.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// serveUpstream runs next, turning the panic with which reverse_proxy
// aborts a response that the upstream broke off (a reset after the status
// and part of the body) into brokeOff, so that the caller can still answer
// and log what happened.
func serveUpstream(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (brokeOff bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			brokeOff = true
		}
	}()
	return false, next.ServeHTTP(w, r)
}

// offeredBody is the notification's body as the upstream reads it; done
// once it was read to the end (an atomic: reverse_proxy's transport reads
// it in a goroutine of its own). It has Read only (no WriteTo, which
// io.Copy would use instead), so every way of reading it is seen.
type offeredBody struct {
	r    *bytes.Reader
	done atomic.Bool
}

func (b *offeredBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.done.Store(true)
	}
	return n, err
}

func (*offeredBody) Close() error { return nil }

// errTooSlow: the body did not arrive in time.
var errTooSlow = errors.New("the body did not arrive in time")

// readWithin reads r's body, at most limit bytes, within d of now. Caddy's
// server bounds only each read (read_idle_timeout, a minute by default),
// so a client could dribble a body for hours; past d, the connection's
// read deadline is set to the past, again and again, until the reading
// stops (Caddy's own reader sets a deadline before each read). Where the
// connection has no read deadline to set, the body is read to its end
// (within read_idle_timeout per read) and is still too late.
func readWithin(w http.ResponseWriter, r *http.Request, limit int64, d time.Duration) ([]byte, error) {
	var (
		mu          sync.Mutex
		stopped     bool
		late        bool
		rc          = http.NewResponseController(w)
		cutOff      func()
		cutOffTimer *time.Timer
	)
	cutOff = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		late = true
		if rc.SetReadDeadline(time.Now()) == nil {
			cutOffTimer = time.AfterFunc(10*time.Millisecond, cutOff)
		}
	}
	cutOffTimer = time.AfterFunc(d, cutOff)
	var buf bytes.Buffer
	buf.Grow(int(max(min(r.ContentLength, limit), 0)) + bytes.MinRead)
	_, err := buf.ReadFrom(io.LimitReader(r.Body, limit))
	mu.Lock()
	stopped = true
	cutOffTimer.Stop()
	wasLate := late
	mu.Unlock()
	if wasLate {
		return nil, errTooSlow
	}
	return buf.Bytes(), err
}

// maxAckBody bounds the part of the upstream's answer that is kept: an
// acknowledgement is seven bytes and some whitespace.
const maxAckBody = 256

// ackRecorder takes the upstream's answer to a notification: it keeps
// the status, the headers and the start of the body, and sends nothing
// on. Not caddyhttp.NewResponseRecorder: buffering, it keeps the whole
// body, and the answer of a misrouted notification may be a large page.
type ackRecorder struct {
	header   http.Header
	status   int
	body     []byte
	overflow bool // the body was longer than maxAckBody
}

func (s *ackRecorder) Header() http.Header { return s.header }

func (s *ackRecorder) WriteHeader(status int) {
	if s.status == 0 && status >= 200 {
		s.status = status
	}
}

func (s *ackRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if room := maxAckBody - len(s.body); len(p) > room {
		s.body = append(s.body, p[:max(room, 0)]...)
		s.overflow = true
	} else {
		s.body = append(s.body, p...)
	}
	return len(p), nil
}

// Flush lets an upstream handler flush; there is nothing to flush.
func (s *ackRecorder) Flush() {}

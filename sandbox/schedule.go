package sandbox

import "time"

// The store's side of the retry loops (notify.go): where each trade's
// schedule stands, who sends its next attempt, and the attempts made.
// Like trades.go, this file is the store's own: its methods take the
// store's lock. Attempts of the schedule are numbered from 1; a resend
// beside the schedule is number 0.

// scheduled is where t's retry loop stands: the number of the
// schedule's next attempt and when it is due; n 0 while a resend sends
// that attempt in the wait's place; ok false once the loop has ended.
func (ts *tradeStore) scheduled(t *trade) (n int, due time.Time, ok bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch {
	case t.next.IsZero():
		return 0, time.Time{}, false
	case t.sending:
		return 0, t.next, true
	}
	return t.nextNumber, t.next, true
}

// claim takes attempt n of t's schedule for the loop to send, unless a
// resend took it first.
func (ts *tradeStore) claim(t *trade, n int) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.next.IsZero() || t.sending || t.nextNumber != n {
		return false
	}
	t.sending = true
	return true
}

// claimForResend takes, for a resend, the attempt that the loop waits
// for, and returns its number; 0 when the loop is not waiting (it is
// sending, or has ended), so the resend is one attempt beside the
// schedule.
func (ts *tradeStore) claimForResend(t *trade, at time.Time) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !t.waiting(at) {
		return 0
	}
	t.sending = true
	return t.nextNumber
}

// recordAttempt adds a, attempt number n (0: beside the schedule), to
// t's attempts, and moves the schedule on: to the next wait of the
// current sandbox's notify_retry, or to its end once an attempt is
// accepted or the last one was sent. A resend's move wakes the loop.
func (ts *tradeStore) recordAttempt(t *trade, a notifyAttempt, n int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t.attempts = appendBounded(t.attempts, a)
	t.attemptsTotal++
	if a.accepted {
		t.delivered = true
	}
	if n == 0 {
		if !t.delivered || t.sending {
			// The loop goes on, or its attempt in flight ends it.
			return
		}
		// Accepted beside the schedule: the loop sends no more.
		t.next, t.nextNumber = time.Time{}, 0
	} else {
		t.sending = false
		retry := ts.currentLocked().retry
		switch {
		case t.delivered || n > len(retry):
			t.next, t.nextNumber = time.Time{}, 0
			t.gaveUp = !t.delivered
		case ts.stopped:
			t.next, t.nextNumber = time.Time{}, 0
		default:
			t.next, t.nextNumber = now().Add(retry[n-1]), n+1
		}
	}
	if a.resend {
		select {
		case t.wake <- struct{}{}:
		default: // the loop has a wake-up pending already
		}
	}
}

// endLoop ends t's schedule when the store stops: nothing more is due.
// An attempt that a resend is sending ends it when recorded.
func (ts *tradeStore) endLoop(t *trade) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !t.sending {
		t.next, t.nextNumber = time.Time{}, 0
	}
}

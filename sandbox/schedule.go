package sandbox

import "time"

// The store's side of the retry loops (notify.go): where each
// notification's schedule stands, who sends its next attempt, and the
// attempts made. Each notification of a trade (the payment's, each
// refund's) has a schedule of its own. Like trades.go, this file is the
// store's own: its methods take the store's lock. Attempts of the
// schedule are numbered from 1; a resend beside the schedule is number 0.

// startLoop starts n's retry loop, its first attempt due at at, unless
// the store has stopped. The caller holds the lock.
func (ts *tradeStore) startLoop(n *notification, at time.Time) {
	if ts.stopped {
		return
	}
	n.next, n.nextNumber = at, 1
	ts.loops.Add(1)
	go ts.deliver(n)
}

// scheduled is where n's retry loop stands: the number of the schedule's
// next attempt and when it is due; number 0 while a resend sends that
// attempt in the wait's place; ok false once the loop has ended.
func (ts *tradeStore) scheduled(n *notification) (number int, due time.Time, ok bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch {
	case n.next.IsZero():
		return 0, time.Time{}, false
	case n.sending:
		return 0, n.next, true
	}
	return n.nextNumber, n.next, true
}

// claim takes attempt number of n's schedule for the loop to send,
// unless a resend took it first.
func (ts *tradeStore) claim(n *notification, number int) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if n.next.IsZero() || n.sending || n.nextNumber != number {
		return false
	}
	n.sending = true
	return true
}

// claimForResend takes, for a resend, the attempt that the loop waits
// for, and returns its number; 0 when the loop is not waiting (it is
// sending, or has ended), so the resend is one attempt beside the
// schedule.
func (ts *tradeStore) claimForResend(n *notification, at time.Time) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !n.waiting(at) {
		return 0
	}
	n.sending = true
	return n.nextNumber
}

// recordAttempt adds a, attempt number (0: beside the schedule), to n's
// attempts, and moves the schedule on: to the next wait of the current
// sandbox's notify_retry, or to its end once an attempt is accepted or
// the last one was sent. A resend's move wakes the loop.
func (ts *tradeStore) recordAttempt(n *notification, a notifyAttempt, number int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n.attempts = appendBounded(n.attempts, a)
	n.attemptsTotal++
	if a.accepted {
		n.delivered = true
	}
	if number == 0 {
		if !n.delivered || n.sending {
			// The loop goes on, or its attempt in flight ends it.
			return
		}
		// Accepted beside the schedule: the loop sends no more.
		n.next, n.nextNumber = time.Time{}, 0
	} else {
		n.sending = false
		retry := ts.currentLocked().retry
		switch {
		case n.delivered || number > len(retry):
			n.next, n.nextNumber = time.Time{}, 0
			n.gaveUp = !n.delivered
		case ts.stopped:
			n.next, n.nextNumber = time.Time{}, 0
		default:
			n.next, n.nextNumber = now().Add(retry[number-1]), number+1
		}
	}
	if a.resend {
		select {
		case n.wake <- struct{}{}:
		default: // the loop has a wake-up pending already
		}
	}
}

// endLoop ends n's schedule when the store stops: nothing more is due.
// An attempt that a resend is sending ends it when recorded.
func (ts *tradeStore) endLoop(n *notification) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !n.sending {
		n.next, n.nextNumber = time.Time{}, 0
	}
}

// payLater makes t, a barcode payment that the buyer confirms in the
// app, paid at at: settle pays it then, or as soon as the store reads it
// after that time, and a timer of the store's lifetime pays it at that
// time if nothing read it before. A trade cancelled meanwhile stays
// closed. The caller does not hold the lock.
func (ts *tradeStore) payLater(t *trade, at time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t.payAt = at
	if ts.stopped {
		return
	}
	ts.loops.Add(1)
	go ts.payWhenDue(t, at)
}

// payWhenDue is payLater's timer: it waits until at by the package
// clock (woken early, it waits the rest) and settles t, or returns when
// the store stops.
func (ts *tradeStore) payWhenDue(t *trade, at time.Time) {
	defer ts.loops.Done()
	for {
		if d := at.Sub(now()); d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-ts.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		ts.mu.Lock()
		ts.settle(t)
		ts.mu.Unlock()
		return
	}
}

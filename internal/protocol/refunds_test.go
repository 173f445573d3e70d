package protocol

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// batch_no: today's date in Beijing, whatever the zone of the time given,
// around midnight too; then 3 to 24 letters or digits, not 000.
func TestCheckBatchNo(t *testing.T) {
	lastSecond := time.Date(2024, 5, 20, 15, 59, 59, 0, time.UTC)                      // 23:59:59 on the 20th in Beijing
	midnight := time.Date(2024, 5, 20, 16, 0, 0, 0, time.UTC)                          // 00:00:00 on the 21st in Beijing
	utcMidnight := time.Date(2024, 5, 21, 0, 0, 0, 0, time.UTC)                        // 08:00 on the 21st in Beijing
	lateNewYork := time.Date(2024, 5, 20, 12, 0, 0, 0, time.FixedZone("EDT", -4*3600)) // 00:00 on the 21st in Beijing
	for _, tc := range []struct {
		batchNo string
		at      time.Time
		ok      bool
	}{
		{"20240520001", lastSecond, true},
		{"20240521001", lastSecond, false}, // tomorrow
		{"20240521001", midnight, true},
		{"20240520001", midnight, false}, // yesterday
		{"20240521001", utcMidnight, true},
		{"20240521001", lateNewYork, true},
		{"20240520001", lateNewYork, false},
		{"20240520000", lastSecond, false},
		{"202405200000", lastSecond, true},
		{"20240520A00", lastSecond, true},
		{"2024052001", lastSecond, false}, // 2 after the date
		{"20240520" + strings.Repeat("9", 24), lastSecond, true},
		{"20240520" + strings.Repeat("9", 25), lastSecond, false},
		{"20240520abcXYZ", lastSecond, true},
		{"20240520ab_", lastSecond, false},
		{"20240520ab-", lastSecond, false},
		{"20240520测试1", lastSecond, false},
		{"2024O520001", lastSecond, false},
		{"", lastSecond, false},
		{" 20240520001", lastSecond, false},
	} {
		err := CheckBatchNo(tc.batchNo, tc.at)
		if tc.ok {
			assert.NoError(t, err, tc.batchNo)
		} else {
			assert.Error(t, err, tc.batchNo)
		}
	}
	assert.ErrorContains(t, CheckBatchNo("20240520001", midnight), "20240521", "the error says which day it is")
	assert.ErrorContains(t, CheckBatchNo("20240521000", midnight), "000")
}

// refundsOf makes n refunds of distinct trades.
func refundsOf(n int) []Refund {
	r := make([]Refund, n)
	for i := range r {
		r[i] = Refund{TradeNo: fmt.Sprintf("2024052122001%015d", i), Amount: "0.01", Reason: "r"}
	}
	return r
}

// JoinRefunds writes detail_data: amounts with 2 decimals, # between
// items, 1 to 1000 items, no trade twice; every field checked.
func TestJoinRefunds(t *testing.T) {
	d, n, err := JoinRefunds([]Refund{{"T1", "1.5", "部分退款"}, {"T2", "2", ""}, {"T_3", "100000000", "a=b&c d+e"}}, "gbk")
	require.NoError(t, err)
	assert.Equal(t, "T1^1.50^部分退款#T2^2.00^#T_3^100000000.00^a=b&c d+e", d)
	assert.Equal(t, 3, n)

	d, n, err = JoinRefunds(refundsOf(MaxRefunds), "utf-8")
	require.NoError(t, err)
	assert.Equal(t, 1000, n)
	assert.Equal(t, 999, strings.Count(d, "#"))
	_, _, err = JoinRefunds(refundsOf(MaxRefunds+1), "utf-8")
	assert.ErrorContains(t, err, "1001 refunds: at most 1000")
	_, _, err = JoinRefunds(nil, "utf-8")
	assert.ErrorContains(t, err, "no refunds")

	// A reason is at most 255 bytes in the partner's charset: 127 Chinese
	// characters and a letter are 255 GBK bytes, 128 characters 256; in
	// UTF-8 those 127 characters are 381 bytes.
	han := strings.Repeat("退", 127)
	for _, tc := range []struct {
		reason, charset string
		ok              bool
	}{
		{han + "a", "gbk", true},
		{han + "退", "gbk", false},
		{han + "ab", "gbk", false},
		{strings.Repeat("a", 255), "utf-8", true},
		{strings.Repeat("a", 256), "utf-8", false},
		{strings.Repeat("退", 85), "utf-8", true},
		{han, "utf-8", false},
		{"😀", "utf-8", true},
		{"😀", "gbk", false},
		{"a^b", "utf-8", false},
		{"a$b", "utf-8", false},
		{"a|b", "utf-8", false},
		{"a#b", "utf-8", false},
		{"a\nb", "utf-8", false},
		{"a\x00b", "utf-8", false},
		{"\xff", "utf-8", false},
	} {
		_, _, err := JoinRefunds([]Refund{{"T1", "1", tc.reason}}, tc.charset)
		if tc.ok {
			assert.NoError(t, err, "%q in %s", tc.reason, tc.charset)
		} else {
			assert.Error(t, err, "%q in %s", tc.reason, tc.charset)
		}
	}
	for _, r := range []Refund{
		{"", "1", "r"}, {"T 1", "1", "r"}, {"T^1", "1", "r"}, {strings.Repeat("1", 65), "1", "r"},
		{"T1", "", "r"}, {"T1", "0", "r"}, {"T1", "0.001", "r"}, {"T1", "-1", "r"}, {"T1", "1e2", "r"},
		{"T1", "100000000.01", "r"}, {"T1", " 1", "r"},
	} {
		_, _, err := JoinRefunds([]Refund{r}, "utf-8")
		assert.Error(t, err, "%+v", r)
	}
	_, _, err = JoinRefunds([]Refund{{"T1", "1", "a"}, {"T2", "1", "b"}, {"T1", "2", "c"}}, "utf-8")
	assert.ErrorContains(t, err, "refund 3: trade_no T1 is already in the batch")
}

// ParseDetailData reads what JoinRefunds writes, the amounts as written,
// with the same rules; fee and royalty refunds are refused.
func TestParseDetailData(t *testing.T) {
	r, err := ParseDetailData("T1^1.5^部分退款#T2^2.00^", "gbk")
	require.NoError(t, err)
	assert.Equal(t, []Refund{{"T1", "1.5", "部分退款"}, {"T2", "2.00", ""}}, r)

	d, _, err := JoinRefunds(refundsOf(MaxRefunds), "utf-8")
	require.NoError(t, err)
	r, err = ParseDetailData(d, "utf-8")
	require.NoError(t, err)
	assert.Equal(t, refundsOf(MaxRefunds), r)
	_, err = ParseDetailData(d+"#T9^1^r", "utf-8")
	assert.ErrorContains(t, err, "at most 1000")

	for detail, says := range map[string]string{
		"":         "no refunds",
		"#":        "refund 1: must be trade_no^amount^reason",
		"T1^1^r#":  "refund 2: must be trade_no^amount^reason",
		"T1^1":     "must be trade_no^amount^reason",
		"T1^1^r^x": "must be trade_no^amount^reason",
		"T1^1^r$s@example.com^2088000000000001^0.01":       "fee refunds",
		"T1^1^r|2088000000000002^2088000000000003^0.01^分润": "royalty refunds",
		"T1^1^a$b":                         "^ $ | or #",
		"T1^x^r":                           "amount",
		"T 1^1^r":                          "trade_no",
		"T1^1^r#T1^2^s":                    "refund 2: trade_no T1 is already",
		"T1^1^" + strings.Repeat("退", 128): "256 bytes in gbk",
		"T1^1^😀":                           "gbk cannot hold",
	} {
		_, err := ParseDetailData(detail, "gbk")
		assert.ErrorContains(t, err, says, detail)
	}
}

// FuzzRefunds: ParseDetailData never panics, and what it accepts joins
// back to the same items; JoinRefunds and ParseDetailData are inverses on
// whatever JoinRefunds accepts (amounts compared as amounts: JoinRefunds
// writes them with 2 decimals).
func FuzzRefunds(f *testing.F) {
	f.Add("T1^1.50^部分退款#T2^2.00^", "T1\t1.5\t部分退款\nT2\t2\t", false)
	f.Add("2024052021001004680000000102^0.01^會員價 退款（王堃）", "T1\t100000000\t會員價", true)
	f.Add("T1^1^r$s^2088000000000001^0.01^SUCCESS", "T1\t0.001\tr", false)
	f.Add("#^^#", "T1\t1\ta#b\nT1\t1\t", true)
	f.Fuzz(func(t *testing.T, detail, list string, gbk bool) {
		charset := "utf-8"
		if gbk {
			charset = "gbk"
		}
		if refunds, err := ParseDetailData(detail, charset); err == nil {
			joined, n, err := JoinRefunds(refunds, charset)
			if err != nil || n != len(refunds) {
				t.Fatalf("ParseDetailData accepted %q, JoinRefunds refused it: %v", detail, err)
			}
			again, err := ParseDetailData(joined, charset)
			if err != nil || !sameRefunds(refunds, again) {
				t.Fatalf("%q joined as %q, read back as %v (%v)", detail, joined, again, err)
			}
		}
		var refunds []Refund
		for _, line := range strings.Split(list, "\n") {
			f := strings.SplitN(line, "\t", 3)
			for len(f) < 3 {
				f = append(f, "")
			}
			refunds = append(refunds, Refund{f[0], f[1], f[2]})
		}
		joined, n, err := JoinRefunds(refunds, charset)
		if err != nil {
			return
		}
		back, err := ParseDetailData(joined, charset)
		if err != nil || n != len(refunds) || !sameRefunds(refunds, back) {
			t.Fatalf("%v joined as %q, read back as %v (%v)", refunds, joined, back, err)
		}
	})
}

// sameRefunds reports whether a and b are the same items, amounts
// compared as amounts.
func sameRefunds(a, b []Refund) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, errX := ParseAmount(a[i].Amount)
		y, errY := ParseAmount(b[i].Amount)
		if a[i].TradeNo != b[i].TradeNo || a[i].Reason != b[i].Reason || errX != nil || errY != nil || x != y {
			return false
		}
	}
	return true
}

package sandbox

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"path/filepath"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2"
)

// The trades outlive a reload. A `caddy reload` (to fix the sidecar's
// forward_notify, say) provisions the new config, then cleans up the old
// one; a sandbox of the new config with the same identity as Alipay
// takes the old one's trade store, trades and pending retries included,
// as Caddy's own modules keep their listeners and caches across reloads.
//
// The store's retry loops run on the store's own context, which the last
// sandbox to let go of it cancels (tradeStore.Destruct), not on a
// config's. Each attempt reads the current sandbox's settings, the one
// provisioned last of those that share the store (tradeStore.current):
// its logger, HTTP client, signers and notify_retry, so that the waits
// after a reload are the new config's (a wait under way runs out as it
// was scheduled). The notify_ids that notify_verify confirms, the legacy
// batches refunded and those that wait on the seller's password page are
// the store's too, and max_trades is the current sandbox's.

// stores holds the trade stores of the running sandboxes, by storeKey.
var stores = caddy.NewUsagePool()

// A storeKey is what identifies a sandbox as Alipay: a shop that spoke to
// the one would speak to the other alike. Keys are fingerprints, so the
// pool holds no secret.
type storeKey struct {
	appKey, alipayKey string // SHA-256 of the public keys (PKIX DER); "" without OpenAPI keys
	partner           string
	md5Key            string // the MD5 sign of a fixed text with md5_key; "" without partner
	certificates      string // the certificates directory, absolute; "" when off
	encryptKey        string // a fixed text encrypted with encrypt_key; "" when off
}

// identity is the sandbox's storeKey, once its keys are parsed.
func (h *Handler) identity(appKey *rsa.PublicKey, alipayKey *rsa.PrivateKey) (storeKey, error) {
	var k storeKey
	if appKey != nil {
		var err error
		if k.appKey, err = keyFingerprint(appKey); err != nil {
			return k, err
		}
		if k.alipayKey, err = keyFingerprint(&alipayKey.PublicKey); err != nil {
			return k, err
		}
	}
	if h.legacy != nil {
		k.partner = h.legacy.partner
		sign, err := h.legacy.signers[protocol.SignTypeMD5].Sign([]byte("caddy-alipay sandbox identity"))
		if err != nil {
			return k, err
		}
		k.md5Key = sign
	}
	if h.contentKey != nil {
		k.encryptKey = h.contentKey.Encrypt([]byte("caddy-alipay sandbox identity"))
	}
	if h.Certificates != "" {
		k.certificates = h.Certificates
		if abs, err := filepath.Abs(h.Certificates); err == nil {
			k.certificates = abs
		}
	}
	return k, nil
}

func keyFingerprint(key *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// takeStore takes the store of key from the pool, a new one if no
// sandbox holds it, and makes h its current sandbox.
func (h *Handler) takeStore(key storeKey) error {
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) { return newTradeStore(), nil })
	if err != nil {
		return err
	}
	h.key, h.trades = key, v.(*tradeStore)
	h.trades.attach(h)
	return nil
}

// Cleanup implements caddy.CleanerUpper: the sandbox lets go of its
// trade store. In a reload the new config's sandbox of the same identity
// holds it already, and the trades and retries go on; the last to let
// go stops the retry loops. Requests still being served keep the store
// they have. Calling Cleanup again does nothing.
func (h *Handler) Cleanup() error {
	if h.trades == nil || !h.trades.detach(h) {
		return nil
	}
	_, err := stores.Delete(h.key)
	return err
}

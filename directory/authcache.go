package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"time"
)

// The login cache. A mail client opens several connections and reconnects
// all day; phones reconnect at every network change. Checking an argon2id
// hash costs tens of milliseconds of CPU and 19 MiB of memory on purpose
// (crypto/password.go), which is right for a guess and wasteful for the
// hundredth login of the same device: Dovecot keeps an authentication
// cache for the same reason. After a successful check, the cache remembers
// an HMAC of (address, password) under a key that lives only in this
// process's memory, and the stored hash that matched. A later login with
// the same password is accepted without a new hash check only while that
// same stored hash is still the account's (a password change, from any
// process, changes the stored hash and so misses the cache), within
// loginCacheTTL. The account status is read from the store at every login
// as before, and a failed login always costs a full hash check.

const (
	loginCacheTTL     = 10 * time.Minute
	maxCachedLogins   = 100000
	lastLoginInterval = time.Hour // see recordLogin
)

type cachedLogin struct {
	mac     [sha256.Size]byte
	hash    string // the stored hash that matched
	appID   int64  // 0 for the main password
	expires time.Time
}

func (d *Directory) loginMAC(addr, password string) [sha256.Size]byte {
	d.loginMu.Lock()
	if d.loginKey == nil {
		d.loginKey = make([]byte, 32)
		rand.Read(d.loginKey)
	}
	key := d.loginKey
	d.loginMu.Unlock()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(addr))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [sha256.Size]byte
	copy(out[:], m.Sum(nil))
	return out
}

// cachedCheck reports whether password was verified for addr recently
// against a hash the account still has, and which application password it
// was (0 for the main one).
func (d *Directory) cachedCheck(addr, password string, creds Credentials) (bool, int64) {
	d.loginMu.Lock()
	c, ok := d.logins[addr]
	d.loginMu.Unlock()
	if !ok || !d.now().Before(c.expires) {
		return false, 0
	}
	mac := d.loginMAC(addr, password)
	if !hmac.Equal(mac[:], c.mac[:]) {
		return false, 0
	}
	if c.appID == 0 {
		return creds.PasswordHash != "" && creds.PasswordHash == c.hash, 0
	}
	for _, ap := range creds.AppPasswords {
		if ap.ID == c.appID && ap.Hash == c.hash {
			return true, c.appID
		}
	}
	return false, 0
}

// A loginFlight is a hash check under way. Logins that arrive while the
// same address, password and stored hashes are being checked wait for
// that check instead of starting their own: a mail client opening five
// connections at once, or reconnecting them all after a network change,
// costs one argon2id hash, 19 MiB and tens of milliseconds, not five. A
// waiter gets exactly the answer its own check would have given; a wrong
// password still costs a full check to whoever sends it first.
type loginFlight struct {
	done  chan struct{}
	ok    bool
	appID int64
}

// checkOnce verifies password against creds (verifyCredentials), sharing
// the check with the identical logins in flight, and remembers a success.
func (d *Directory) checkOnce(addr, password string, creds Credentials) (bool, int64) {
	mac := d.loginMAC(addr, password)
	var b strings.Builder
	b.Write(mac[:])
	b.WriteString(creds.PasswordHash)
	for _, ap := range creds.AppPasswords {
		b.WriteByte(0)
		b.WriteString(ap.Hash)
	}
	key := b.String()
	d.loginMu.Lock()
	if f := d.flights[key]; f != nil {
		d.loginMu.Unlock()
		<-f.done
		return f.ok, f.appID
	}
	f := &loginFlight{done: make(chan struct{})}
	if d.flights == nil {
		d.flights = map[string]*loginFlight{}
	}
	d.flights[key] = f
	d.loginMu.Unlock()
	defer func() {
		d.loginMu.Lock()
		delete(d.flights, key)
		d.loginMu.Unlock()
		close(f.done)
	}()
	f.ok, f.appID = verifyCredentials(creds, password)
	if f.ok {
		d.rememberCheck(addr, password, matchedHash(creds, f.appID), f.appID)
	}
	return f.ok, f.appID
}

// rememberCheck records a successful hash check.
func (d *Directory) rememberCheck(addr, password, hash string, appID int64) {
	mac := d.loginMAC(addr, password)
	d.loginMu.Lock()
	defer d.loginMu.Unlock()
	if d.logins == nil || len(d.logins) >= maxCachedLogins {
		d.logins = map[string]cachedLogin{}
	}
	d.logins[addr] = cachedLogin{mac: mac, hash: hash, appID: appID, expires: d.now().Add(loginCacheTTL)}
}

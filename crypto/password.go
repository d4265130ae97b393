package crypto

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Password hashing: argon2id (RFC 9106) in the PHC string format
// "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>" (unpadded
// standard base64), the format of the reference implementation, so that a
// hash can be checked by any other tool.
//
// Parameters for human-chosen passwords: m=19 MiB, t=2, p=1, the first of
// the OWASP Password Storage Cheat Sheet's equivalent argon2id settings.
// Carepost runs on small servers (2 cores): RFC 9106's first recommendation
// (m=2 GiB) or even m=64 MiB would let a flood of logins eat the memory of
// the machine (100 concurrent attempts × 64 MiB = 6.4 GiB). At 19 MiB one
// hash costs some tens of milliseconds on one core; p=1 because the server
// parallelises across logins, not inside one. hashSlots below bounds how many
// run at once, so a flood queues instead of swapping.
const (
	passwordMemoryKiB = 19 * 1024
	passwordTime      = 2
	passwordThreads   = 1
	saltLen           = 16
	keyLen            = 32
)

// Application passwords are random (GenerateAppPassword: ~99 bits), so no
// stretching is needed to resist offline guessing; they still use argon2id
// (one format, one verifier) with cheap parameters. This matters because a
// login checks the candidate against every app password of the account:
// with expensive parameters an account with ten devices would make each
// failed attempt cost ten full hashes.
const (
	appMemoryKiB = 256
	appTime      = 1
)

// Limits accepted when reading a stored hash, so that a corrupted or hostile
// hash string cannot make a verification allocate gigabytes or spin.
const (
	maxMemoryKiB = 256 * 1024
	maxTime      = 16
	maxThreads   = 16
	// MaxPasswordLen bounds what is hashed: longer input is refused rather
	// than making every attempt proportionally expensive.
	MaxPasswordLen = 1024
)

// ErrMalformedHash means a stored hash is not an argon2id PHC string this
// package can check.
var ErrMalformedHash = errors.New("crypto: malformed argon2id password hash")

// hashSlots bounds concurrent argon2 computations to twice the cores: enough
// to keep every core busy, few enough that memory stays bounded
// (2 cores → 4 × 19 MiB) under a login flood.
var hashSlots = make(chan struct{}, 2*runtime.NumCPU())

// HashPassword hashes a human-chosen password with argon2id.
func HashPassword(pw string) (string, error) {
	return hash(pw, passwordMemoryKiB, passwordTime, passwordThreads)
}

// HashAppPassword hashes an application password (GenerateAppPassword) with
// cheap argon2id parameters; see appMemoryKiB for why that is safe.
func HashAppPassword(pw string) (string, error) {
	return hash(pw, appMemoryKiB, appTime, 1)
}

func hash(pw string, m uint32, t uint32, p uint8) (string, error) {
	if len(pw) > MaxPasswordLen {
		return "", fmt.Errorf("crypto: password longer than %d bytes", MaxPasswordLen)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := derive(pw, salt, m, t, p, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, m, t, p, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

func derive(pw string, salt []byte, m, t uint32, p uint8, n uint32) []byte {
	derivations.Add(1)
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	key := argon2.IDKey([]byte(pw), salt, t, m, p, n)
	if m >= 1024 {
		releaseSoon()
	}
	return key
}

// releaseSoon hands the memory of finished hashes back to the operating
// system. Each human-password check allocates m KiB (19 MiB) that is
// garbage as soon as it returns; left to the runtime's pace, a burst of
// logins would keep the process tens of megabytes larger than its live
// data for minutes. Worse, a collection that runs while a hash is under
// way counts its 19 MiB as live and sets the next collection that much
// later: the sessions opened meanwhile then spread their objects over a
// heap that much larger, which never goes back (it was a tenth of the
// resident memory of 500 idle IMAP sessions). So debug.FreeOSMemory, a
// collection cheap for a server whose live heap is small, runs at once
// after a hash and a second later, then once a second while hashes go on
// finishing.
func releaseSoon() {
	release.Lock()
	defer release.Unlock()
	if release.running {
		release.again = true
		return
	}
	release.running = true
	go func() {
		debug.FreeOSMemory()
		for {
			time.Sleep(time.Second)
			debug.FreeOSMemory()
			release.Lock()
			if !release.again {
				release.running = false
				release.Unlock()
				return
			}
			release.again = false
			release.Unlock()
		}
	}()
}

var release struct {
	sync.Mutex
	running bool // a goroutine of releaseSoon's is at work
	again   bool // a hash ended since its last release
}

var derivations atomic.Int64

// Derivations counts the argon2id computations of this process (hashes
// made and checked): the cost that logins put on the CPU and memory.
func Derivations() int64 { return derivations.Load() }

// VerifyPassword reports whether pw matches the argon2id PHC string hash.
// The comparison of the derived keys is constant-time. A malformed hash is
// an error (ErrMalformedHash), never a match.
func VerifyPassword(hash, pw string) (bool, error) {
	h, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	if len(pw) > MaxPasswordLen {
		// Still spend the time of a check: length is not a side channel
		// worth giving away, and callers expect uniform cost.
		derive("", h.salt, h.m, h.t, h.p, uint32(len(h.key)))
		return false, nil
	}
	key := derive(pw, h.salt, h.m, h.t, h.p, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

type phc struct {
	m, t uint32
	p    uint8
	salt []byte
	key  []byte
}

// parsePHC reads "$argon2id$v=19$m=..,t=..,p=..$salt$hash".
func parsePHC(s string) (phc, error) {
	var h phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, ErrMalformedHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, fmt.Errorf("%w: unsupported version %q", ErrMalformedHash, parts[2])
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return h, ErrMalformedHash
	}
	var seen [3]bool
	for _, kv := range params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return h, ErrMalformedHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return h, ErrMalformedHash
		}
		switch k {
		case "m":
			h.m, seen[0] = uint32(n), true
		case "t":
			h.t, seen[1] = uint32(n), true
		case "p":
			if n > 255 {
				return h, ErrMalformedHash
			}
			h.p, seen[2] = uint8(n), true
		default:
			return h, ErrMalformedHash
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return h, ErrMalformedHash
	}
	// RFC 9106 §3.1: m ≥ 8·p KiB, t ≥ 1, p ≥ 1.
	if h.t < 1 || h.t > maxTime || h.p < 1 || h.p > maxThreads ||
		h.m < 8*uint32(h.p) || h.m > maxMemoryKiB {
		return h, fmt.Errorf("%w: parameters out of range", ErrMalformedHash)
	}
	enc := base64.RawStdEncoding
	var err error
	if h.salt, err = enc.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return h, ErrMalformedHash
	}
	if h.key, err = enc.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 128 {
		return h, ErrMalformedHash
	}
	return h, nil
}

// appAlphabet has no characters that are easily confused when read aloud or
// copied from a screen: no i, l, o, 0 or 1.
const appAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// App password shape: appGroups groups of appGroupLen characters.
// 20 characters of a 31-symbol alphabet carry 20·log2(31) ≈ 99 bits.
const (
	appGroups   = 5
	appGroupLen = 4
)

// GenerateAppPassword returns a new random application password, in groups
// of four lower-case characters joined by dashes, e.g.
// "k7dm-q2xa-9hpt-vw3e-ncr4" (about 99 bits of entropy).
func GenerateAppPassword() string {
	n := appGroups * appGroupLen
	out := make([]byte, 0, n+appGroups-1)
	buf := make([]byte, 64)
	for count := 0; count < n; {
		if _, err := rand.Read(buf); err != nil {
			// crypto/rand.Read never fails on supported platforms (Go ≥ 1.24
			// crashes the program instead); keep the check for clarity.
			panic("crypto: random source failed: " + err.Error())
		}
		for _, b := range buf {
			// Rejection sampling keeps the choice uniform: 248 = 8·31.
			if b >= 248 || count == n {
				continue
			}
			if count > 0 && count%appGroupLen == 0 {
				out = append(out, '-')
			}
			out = append(out, appAlphabet[int(b)%len(appAlphabet)])
			count++
		}
	}
	return string(out)
}

// NormalizeAppPassword returns the canonical form of s if it has the shape
// of an application password typed with other case, spaces or dashes
// ("K7DM Q2XA 9HPT VW3E NCR4"), and false otherwise. Letters that the
// alphabet leaves out on purpose are not guessed back.
func NormalizeAppPassword(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var chars []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if strings.IndexByte(appAlphabet, c) < 0 {
			return "", false
		}
		chars = append(chars, c)
	}
	if len(chars) != appGroups*appGroupLen {
		return "", false
	}
	out := make([]byte, 0, len(chars)+appGroups-1)
	for i, c := range chars {
		if i > 0 && i%appGroupLen == 0 {
			out = append(out, '-')
		}
		out = append(out, c)
	}
	return string(out), true
}

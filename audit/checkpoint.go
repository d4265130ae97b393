package audit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/carepost/carepost/storage"
)

// CheckpointMessage is what a checkpoint's signature covers.
func CheckpointMessage(seq int64, hash []byte, at time.Time) []byte {
	return []byte("carepost audit checkpoint\n" + strconv.FormatInt(seq, 10) + "\n" + hex.EncodeToString(hash) + "\n" + at.UTC().Format(TimeFormat) + "\n")
}

// SignCheckpoint signs the chain's head: event seq has hash. The key is
// the operator's (the server certificate's): ECDSA or RSA (PKCS #1 v1.5)
// over SHA-256, or Ed25519.
func SignCheckpoint(key crypto.Signer, seq int64, hash []byte, at time.Time) (storage.AuditCheckpoint, error) {
	at = truncate(at)
	msg := CheckpointMessage(seq, hash, at)
	var sig []byte
	var err error
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		sum := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	if err != nil {
		return storage.AuditCheckpoint{}, fmt.Errorf("audit: sign a checkpoint: %w", err)
	}
	return storage.AuditCheckpoint{Seq: seq, Hash: hash, Time: at, Signature: sig}, nil
}

// VerifyCheckpoint checks a checkpoint's signature with the operator's
// public key.
func VerifyCheckpoint(key crypto.PublicKey, c storage.AuditCheckpoint) error {
	msg := CheckpointMessage(c.Seq, c.Hash, c.Time)
	sum := sha256.Sum256(msg)
	ok := false
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, sum[:], c.Signature)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], c.Signature) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, msg, c.Signature)
	default:
		return fmt.Errorf("a %T key cannot check checkpoints", key)
	}
	if !ok {
		return errors.New("its signature is not the operator's")
	}
	return nil
}

// Checkpointer signs the newest sealed event every Events events or every
// Every, whichever comes first, when there is anything new.
type Checkpointer struct {
	Log storage.AuditLog
	Key crypto.Signer
	// Events and Every: 0 means 1000 events and 10 minutes.
	Events int64
	Every  time.Duration

	last     int64 // Seq of the last checkpoint
	lastTime time.Time
	loaded   bool
}

// Due reports whether a checkpoint is due now with the newest sealed
// event at seq.
func (c *Checkpointer) due(seq int64, now time.Time) bool {
	if seq <= c.last {
		return false
	}
	events, every := c.Events, c.Every
	if events <= 0 {
		events = 1000
	}
	if every <= 0 {
		every = 10 * time.Minute
	}
	return seq-c.last >= events || now.Sub(c.lastTime) >= every
}

// Maybe signs a checkpoint of event seq (whose hash is hash) if one is
// due; force signs one whenever seq is new (at shutdown).
func (c *Checkpointer) Maybe(ctx context.Context, seq int64, hash []byte, force bool) error {
	if c == nil || c.Key == nil || seq == 0 {
		return nil
	}
	if !c.loaded {
		cps, err := c.Log.AuditCheckpoints(ctx, 0)
		if err != nil {
			return err
		}
		if n := len(cps); n > 0 {
			c.last, c.lastTime = cps[n-1].Seq, cps[n-1].Time
		} else {
			c.lastTime = time.Now()
		}
		c.loaded = true
	}
	now := time.Now()
	if !c.due(seq, now) && !(force && seq > c.last) {
		return nil
	}
	cp, err := SignCheckpoint(c.Key, seq, hash, now)
	if err != nil {
		return err
	}
	if err := c.Log.AddAuditCheckpoint(ctx, cp); err != nil {
		return err
	}
	c.last, c.lastTime = seq, cp.Time
	return nil
}

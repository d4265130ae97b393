package crypto

import (
	"crypto/tls"
	"fmt"
)

// ServerTLSConfig is the TLS policy of every listener that carries
// credentials or health data (SPEC §3, after ANSSI's TLS guide): TLS 1.2 at
// least, 1.3 preferred, and under 1.2 only ECDHE suites with AEAD ciphers
// (forward secrecy, no CBC, no RSA key exchange). TLS 1.3 suites are all
// AEAD with forward secrecy and are not configurable in Go.
func ServerTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// LoadServerTLS loads an operator-supplied certificate and key (PEM files).
func LoadServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: cannot load the certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return ServerTLSConfig(cert), nil
}

package server

import (
	"strings"
	"testing"
	"time"
)

// Every [limits] key is validated with a sentence naming it.
func TestLimitsConfigNamesTheKey(t *testing.T) {
	cfg := Defaults()
	cfg.Limits = LimitsConfig{ConnectionsPerAddress: 0, Connections: -1, HandshakeTimeout: Duration(time.Hour),
		TransferTimeout: 0, CommandsPerSecond: -1, LoginDelayMax: Duration(time.Millisecond)}
	err := cfg.Validate()
	for _, key := range []string{"limits.connections_per_address", "limits.connections:", "limits.handshake_timeout",
		"limits.transfer_timeout", "limits.commands_per_second", "limits.login_delay_max"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	if def := Defaults(); def.Validate() != nil {
		t.Errorf("defaults: %v", def.Validate())
	}
}

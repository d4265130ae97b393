package server

import (
	"fmt"
	"time"

	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/storage"
)

// dmpLimits are the zip limits of [dmp].
func (c DMPConfig) limits() dmp.Limits {
	l := dmp.DefaultLimits()
	l.MaxEntries, l.MaxEntrySize, l.MaxTotalSize, l.MaxRatio = c.MaxEntries, c.MaxEntrySize, c.MaxTotalSize, c.MaxRatio
	return l
}

// dmpHeaders is the transform that adds X-MSS-CODECDA and X-MSS-INS to a
// message carrying CDA documents; nil when [dmp] is off.
func (s *Server) dmpHeaders() delivery.Transform {
	c := s.Config.DMP
	if !c.Enabled {
		return nil
	}
	dep := map[string]bool{}
	for _, a := range c.DepositAddresses {
		dep[a] = true
	}
	return &dmp.HeadersTransform{Dir: s.Dir, DepositAddresses: dep, Limits: c.limits(), Logger: s.Logger.With("component", "dmp")}
}

// dmpHook is the deposit hook of [dmp] (docs/dmp.md): after a message to a
// patient or a deposit address is stored, its documents go to the
// configured connector and the sender gets its receipt.
func (s *Server) dmpHook() (delivery.Hook, error) {
	c := s.Config.DMP
	grid, err := s.DMPGrid()
	if err != nil {
		return nil, fmt.Errorf("dmp.grid: %w", err)
	}
	var conn dmp.Connector
	switch c.Connector {
	case "mhd":
		m, err := dmp.NewMHD(dmp.MHDConfig{Endpoint: c.MHD.Endpoint, CAFile: c.MHD.CAFile, ClientCert: c.MHD.ClientCert,
			ClientKey: c.MHD.ClientKey, SourceID: c.MHD.SourceID, Timeout: time.Duration(c.MHD.Timeout), Logger: s.Logger.With("component", "dmp-mhd")})
		if err != nil {
			return nil, fmt.Errorf("dmp.mhd: %w", err)
		}
		conn = m
	default:
		if conn, err = s.DMPVault(); err != nil {
			return nil, err
		}
	}
	return dmp.NewHook(dmp.HookConfig{
		DepositAddresses: c.DepositAddresses,
		Limits:           c.limits(),
		Grid:             grid,
		Connector:        conn,
		Hostname:         s.Config.Hostname,
		MaxMessage:       s.Config.MaxMessageSize,
		Logger:           s.Logger.With("component", "dmp"),
		Audit:            func(r storage.AuditRecord) { s.events.Record(r) },
	}, s.Dir, s.Store, s.Pipeline), nil
}
